package esim

import (
	"sort"
	"strconv"
	"strings"
)

// RemoteClusterSettings are the effective settings of one enabled remote
// cluster alias (persistent overlaid by transient, defaults applied).
type RemoteClusterSettings struct {
	Alias string
	// Mode is "sniff" or "proxy".
	Mode string
	// Proxy mode.
	ProxyAddress           string
	ServerName             string
	ProxySocketConnections int
	// Sniff mode.
	Seeds           []string
	NodeConnections int
	SniffProxy      string // cluster.remote.<alias>.proxy
	// Both modes.
	SkipUnavailable   bool
	PingSchedule      string // "" when unset
	Compress          string // "" when unset
	CompressionScheme string // "" when unset
	// 9.3+ signing material paths ("" when unset).
	SigningCertificate string
	SigningKey         string
}

// RemoteClusters returns the enabled remote clusters sorted by alias.
func (n *Node) RemoteClusters() []RemoteClusterSettings {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remoteClustersLocked()
}

// SigningCertificateAuthorities returns cluster.remote.signing.certificate_authorities (9.3+).
func (n *Node) SigningCertificateAuthorities() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := merge(n.persistent, n.transient)["cluster.remote.signing.certificate_authorities"]
	if !ok {
		return nil
	}
	return append([]string(nil), v.asList()...)
}

func (n *Node) remoteClustersLocked() []RemoteClusterSettings {
	s := merge(n.persistent, n.transient)
	aliases := map[string]bool{}
	for k := range s {
		if _, alias, _, ok := n.lookup(k); ok && alias != "" {
			aliases[alias] = true
		}
	}
	var out []RemoteClusterSettings
	for _, alias := range sortedKeys(aliases) {
		if on, err := n.remoteEnabled(s, alias); err != nil || !on {
			continue
		}
		get := func(suffix string) (string, bool) {
			v, ok := s["cluster.remote."+alias+"."+suffix]
			return v.s, ok
		}
		intOr := func(suffix string, def int) int {
			if v, ok := get(suffix); ok {
				if i, err := strconv.Atoi(strings.TrimPrefix(v, "+")); err == nil {
					return i
				}
			}
			return def
		}
		mode, _ := n.remoteMode(s, alias)
		rc := RemoteClusterSettings{
			Alias:                  alias,
			Mode:                   strings.ToLower(mode),
			ProxySocketConnections: intOr("proxy_socket_connections", 18),
			NodeConnections:        intOr("node_connections", 3),
			SkipUnavailable:        n.ver.skipUnavailableDefault(),
		}
		rc.ProxyAddress, _ = get("proxy_address")
		rc.ServerName, _ = get("server_name")
		rc.SniffProxy, _ = get("proxy")
		rc.PingSchedule, _ = get("transport.ping_schedule")
		rc.Compress, _ = get("transport.compress")
		rc.CompressionScheme, _ = get("transport.compression_scheme")
		rc.SigningCertificate, _ = get("signing.certificate")
		rc.SigningKey, _ = get("signing.key")
		if v, ok := get("skip_unavailable"); ok {
			rc.SkipUnavailable = v == "true"
		}
		rc.Seeds = append([]string{}, s["cluster.remote."+alias+".seeds"].asList()...)
		out = append(out, rc)
	}
	return out
}

// remoteInfo is GET /_remote/info (RemoteConnectionInfo.toXContent).
func (n *Node) remoteInfo(*reqCtx) (action, error) {
	return func() (*response, error) {
		n.mu.Lock()
		remotes := n.remoteClustersLocked()
		statusFn := n.remoteStatus
		n.mu.Unlock()
		sort.Slice(remotes, func(i, j int) bool { return remotes[i].Alias < remotes[j].Alias })
		out := obj{}
		for _, rc := range remotes {
			var st RemoteStatus
			if statusFn != nil {
				st = statusFn(rc.Alias)
			}
			o := obj{{"connected", st.Connected}, {"mode", rc.Mode}}
			if rc.Mode == "proxy" {
				o = append(o, Field{"proxy_address", rc.ProxyAddress}, Field{"server_name", rc.ServerName},
					Field{"num_proxy_sockets_connected", st.NumSocketsConnected},
					Field{"max_proxy_socket_connections", rc.ProxySocketConnections})
			} else {
				o = append(o, Field{"seeds", rc.Seeds}, Field{"num_nodes_connected", st.NumSocketsConnected},
					Field{"max_connections_per_cluster", rc.NodeConnections})
			}
			o = append(o, Field{"initial_connect_timeout", "30s"}, Field{"skip_unavailable", rc.SkipUnavailable})
			if st.HasCredentials {
				o = append(o, Field{"cluster_credentials", "::es_redacted::"})
			}
			out = append(out, Field{rc.Alias, o})
		}
		return ok(out)
	}, nil
}

// getClusterSettings is GET /_cluster/settings.
func (n *Node) getClusterSettings(c *reqCtx) (action, error) {
	flat, err := c.boolParam("flat_settings", false)
	if err != nil {
		return nil, err
	}
	defaults, err := c.boolParam("include_defaults", false)
	if err != nil {
		return nil, err
	}
	if _, err := c.boolParam("local", false); err != nil {
		return nil, err
	}
	if err := checkTimeParams(c, "master_timeout", "timeout"); err != nil {
		return nil, err
	}
	return func() (*response, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		o := obj{{"persistent", renderSettings(n.persistent, flat)}, {"transient", renderSettings(n.transient, flat)}}
		if defaults {
			o = append(o, Field{"defaults", renderSettings(n.defaultsLocked(), flat)})
		}
		return ok(o)
	}, nil
}

// defaultsLocked is a small, representative "defaults" section: the defaults
// of esim's known concrete settings that are not set. Real ES lists every
// registered setting.
func (n *Node) defaultsLocked() settingsMap {
	set := merge(n.persistent, n.transient)
	d := settingsMap{"cluster.name": {s: n.cfg.ClusterName}, "node.name": {s: n.cfg.NodeName}}
	add := func(defs map[string]settingDef) {
		for k, def := range defs {
			if _, ok := set[k]; !ok && def.hasDefault {
				d[k] = settingValue{s: def.def}
			}
		}
	}
	add(concreteSettings)
	if n.ver.hasSigningSettings() {
		add(signingClusterSettings)
	}
	return d
}

// renderSettings writes settings flat or nested (Settings.toXContent with
// getAsStructuredMap, including its fallback to dotted keys on conflicts).
func renderSettings(s settingsMap, flat bool) any {
	if flat {
		o := obj{}
		for _, k := range sortedKeys(s) {
			o = append(o, Field{k, s[k].render()})
		}
		return o
	}
	root := map[string]any{}
	for _, k := range sortedKeys(s) {
		processSetting(root, "", k, s[k].render())
	}
	return toObj(root)
}

func processSetting(m map[string]any, prefix, setting string, value any) {
	i := strings.IndexByte(setting, '.')
	if i < 0 {
		if inner, ok := m[prefix+setting].(map[string]any); ok {
			for k, v := range inner {
				m[prefix+setting+"."+k] = v
			}
		}
		m[prefix+setting] = value
		return
	}
	key, rest := setting[:i], setting[i+1:]
	switch existing := m[prefix+key].(type) {
	case nil:
		inner := map[string]any{}
		processSetting(inner, "", rest, value)
		m[prefix+key] = inner
	case map[string]any:
		processSetting(existing, "", rest, value)
	default:
		processSetting(m, prefix+key+".", rest, value)
	}
}

func toObj(m map[string]any) obj {
	o := obj{}
	for _, k := range sortedKeys(m) {
		if inner, ok := m[k].(map[string]any); ok {
			o = append(o, Field{k, toObj(inner)})
		} else {
			o = append(o, Field{k, m[k]})
		}
	}
	return o
}
