package esim

import (
	"regexp"
	"strings"
)

// settingValue is one stored setting: a string or a list of strings.
type settingValue struct {
	s      string
	list   []string
	isList bool
	null   bool // only in requests: delete
}

func (v settingValue) render() any {
	if v.isList {
		return append([]string{}, v.list...)
	}
	return v.s
}

func (v settingValue) equal(o settingValue) bool {
	if v.isList != o.isList || v.s != o.s || len(v.list) != len(o.list) {
		return false
	}
	for i := range v.list {
		if v.list[i] != o.list[i] {
			return false
		}
	}
	return true
}

// asList is Settings.getAsList with comma splitting for string values.
func (v settingValue) asList() []string {
	if v.isList {
		return v.list
	}
	var out []string
	for _, s := range strings.Split(v.s, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

type settingsMap map[string]settingValue

func (m settingsMap) clone() settingsMap {
	c := make(settingsMap, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

type settingKind int

const (
	skString settingKind = iota
	skInt
	skBool
	skTime
	skEnum
	skHostPort
	skHostPortList
	skList
	skBytes
	skLogLevel
	skAllocation
)

// settingDef describes one setting (or one affix suffix).
type settingDef struct {
	kind         settingKind
	min          int64
	enumClass    string
	enumValues   []string
	dynamic      bool
	mode         string // StrategyValidator: "SNIFF" or "PROXY"
	needsEnabled bool   // RemoteConnectionEnabled validator
	def          string // default, for include_defaults
	hasDefault   bool
}

const (
	modeSniff = "SNIFF"
	modeProxy = "PROXY"
)

var (
	modeEnum = settingDef{kind: skEnum, dynamic: true, enumClass: "org.elasticsearch.transport.RemoteConnectionStrategy.ConnectionStrategy", enumValues: []string{modeSniff, modeProxy}}
	secure   = settingDef{kind: skString}
	dynStr   = settingDef{kind: skString, dynamic: true}
)

// remoteSuffixes are the cluster.remote.<alias>.<suffix> settings
// (RemoteClusterSettings). Secure settings are known but not dynamic.
var remoteSuffixes = map[string]settingDef{
	"mode":                         modeEnum,
	"seeds":                        {kind: skHostPortList, dynamic: true, mode: modeSniff},
	"node_connections":             {kind: skInt, min: 1, dynamic: true, mode: modeSniff},
	"proxy":                        {kind: skHostPort, dynamic: true, mode: modeSniff},
	"proxy_address":                {kind: skHostPort, dynamic: true, mode: modeProxy},
	"proxy_socket_connections":     {kind: skInt, min: 1, dynamic: true, mode: modeProxy},
	"server_name":                  {kind: skString, dynamic: true, mode: modeProxy},
	"skip_unavailable":             {kind: skBool, dynamic: true, needsEnabled: true},
	"transport.ping_schedule":      {kind: skTime, dynamic: true, needsEnabled: true},
	"transport.compress":           {kind: skEnum, dynamic: true, needsEnabled: true, enumClass: "org.elasticsearch.transport.Compression.Enabled", enumValues: []string{"TRUE", "FALSE", "INDEXING_DATA"}},
	"transport.compression_scheme": {kind: skEnum, dynamic: true, needsEnabled: true, enumClass: "org.elasticsearch.transport.Compression.Scheme", enumValues: []string{"DEFLATE", "LZ4"}},
	"credentials":                  secure,
}

// remoteSigningSuffixes exist from 9.3 (strong identity verification).
// esim does not check that the files exist (ES fails with "Configured file
// [..] not found") nor that certificate and key come together.
var remoteSigningSuffixes = map[string]settingDef{
	"signing.certificate":                  dynStr,
	"signing.key":                          dynStr,
	"signing.keystore.path":                dynStr,
	"signing.keystore.type":                dynStr,
	"signing.keystore.alias":               dynStr,
	"signing.keystore.algorithm":           dynStr,
	"signing.key.secure_passphrase":        secure,
	"signing.keystore.secure_password":     secure,
	"signing.keystore.secure_key_password": secure,
}

// concreteSettings is esim's small allowlist of other cluster settings
// (dynamic ones can be set; static ones answer "not dynamically updateable").
var concreteSettings = map[string]settingDef{
	"cluster.routing.allocation.enable":                 {kind: skAllocation, dynamic: true, def: "all", hasDefault: true},
	"cluster.routing.allocation.disk.threshold_enabled": {kind: skBool, dynamic: true, def: "true", hasDefault: true},
	"action.destructive_requires_name":                  {kind: skBool, dynamic: true, def: "true", hasDefault: true},
	"indices.recovery.max_bytes_per_sec":                {kind: skBytes, dynamic: true, def: "40mb", hasDefault: true},
	"cluster.max_shards_per_node":                       {kind: skInt, min: 1, dynamic: true, def: "1000", hasDefault: true},
	"cluster.remote.initial_connect_timeout":            {kind: skTime, def: "30s", hasDefault: true},
	"cluster.remote.node.attr":                          {kind: skString, def: "", hasDefault: true},
	"cluster.remote.connections_per_cluster":            {kind: skInt, min: 1, def: "3", hasDefault: true},
	"cluster.name":                                      {kind: skString},
	"node.name":                                         {kind: skString},
}

// signingClusterSettings are the 9.3+ verifying-side settings.
var signingClusterSettings = map[string]settingDef{
	"cluster.remote.signing.certificate_authorities":    {kind: skList, dynamic: true},
	"cluster.remote.signing.truststore.path":            dynStr,
	"cluster.remote.signing.truststore.type":            dynStr,
	"cluster.remote.signing.truststore.algorithm":       dynStr,
	"cluster.remote.signing.truststore.secure_password": secure,
	"cluster.remote.signing.diagnose.trust":             {kind: skBool, dynamic: true, def: "true", hasDefault: true},
}

// affixRe is Setting.AffixKey's pattern: the alias is [-\w]+ (ASCII \w).
var affixRe = regexp.MustCompile(`^cluster\.remote\.([-A-Za-z0-9_]+)\.(.+)$`)

// lookup finds the definition of key; alias is set for remote affix settings.
func (n *Node) lookup(key string) (def settingDef, alias, suffix string, ok bool) {
	if d, found := concreteSettings[key]; found {
		return d, "", "", true
	}
	if n.ver.hasSigningSettings() {
		if d, found := signingClusterSettings[key]; found {
			return d, "", "", true
		}
	}
	if strings.HasPrefix(key, "logger.") && len(key) > len("logger.") {
		return settingDef{kind: skLogLevel, dynamic: true}, "", "", true
	}
	m := affixRe.FindStringSubmatch(key)
	if m == nil {
		return settingDef{}, "", "", false
	}
	if d, found := remoteSuffixes[m[2]]; found {
		return d, m[1], m[2], true
	}
	if n.ver.hasSigningSettings() {
		if d, found := remoteSigningSuffixes[m[2]]; found {
			return d, m[1], m[2], true
		}
	}
	return settingDef{}, "", "", false
}

// checkValue is Setting.validateWithoutDependencies: parse the value and run
// the value-only validator.
func checkValue(key string, d settingDef, v settingValue) *Error {
	listKind := d.kind == skHostPortList || d.kind == skList
	if v.isList && !listKind {
		return iae("Found list type value for setting [%s] but but did not expect a list for it.", key)
	}
	s := v.s
	switch d.kind {
	case skInt:
		i, ok := javaParseInt(s)
		if !ok {
			return iae("Failed to parse value [%s] for setting [%s]", s, key).withCause(numberFormatErr(s))
		}
		if i < d.min {
			return iae("Failed to parse value [%s] for setting [%s] must be >= %d", s, key, d.min)
		}
	case skBool:
		if _, err := parseESBool(s); err != nil {
			return err
		}
	case skTime:
		if _, err := parseTimeValue(s, key); err != nil {
			return err
		}
	case skEnum:
		if _, err := parseEnum(d, s); err != nil {
			return err
		}
	case skHostPort:
		if s != "" {
			return parsePort(s)
		}
	case skHostPortList:
		for _, h := range v.asList() {
			if err := parsePort(h); err != nil {
				return err
			}
		}
	case skBytes:
		return parseByteSize(s, key)
	case skLogLevel:
		switch strings.ToUpper(s) {
		case "OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL":
		default:
			return iae("Unknown level constant [%s].", strings.ToUpper(s)) // [mem] log4j Level.valueOf
		}
	case skAllocation:
		switch strings.ToLower(s) {
		case "all", "primaries", "new_primaries", "none":
		default:
			return iae("Illegal allocation.enable value [%s]", s) // [mem]
		}
	}
	return nil
}

func parseEnum(d settingDef, s string) (string, *Error) {
	up := strings.ToUpper(s)
	for _, e := range d.enumValues {
		if e == up {
			return e, nil
		}
	}
	return "", iae("No enum constant %s.%s", d.enumClass, up)
}

// parsePort is SniffConnectionStrategy.parsePort.
func parsePort(host string) *Error {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return iae("remote hosts need to be configured as [host:port], found [%s] instead", host)
	}
	p := host[i+1:]
	port, ok := javaParseInt(p)
	if !ok {
		return iae("failed to parse port").withCause(numberFormatErr(p))
	}
	if port <= 0 {
		return iae("port number must be > 0 but was: [%d]", port)
	}
	return nil
}

// simpleMatch is Regex.simpleMatch: "*" matches any run of characters.
func simpleMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
