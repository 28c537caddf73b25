package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

const remotePrefix = "cluster.remote."

// aliasPattern is ES's affix key pattern for remote cluster aliases.
var aliasPattern = regexp.MustCompile(`^[-A-Za-z0-9_]+$`)

// Per-alias setting suffixes (RemoteClusterSettings). Keys under
// cluster.remote. that match none of them (initial_connect_timeout,
// node.attr, signing.certificate_authorities, ...) are global, not aliases.
var (
	sniffSuffixes = []string{"seeds", "node_connections", "proxy"}
	proxySuffixes = []string{"proxy_address", "proxy_socket_connections", "server_name"}
	otherSuffixes = []string{"mode", "skip_unavailable"}
	// prefix families of per-alias keys
	aliasFamilies = []string{"transport.", "signing."}
)

func isAliasSuffix(s string) bool {
	if slices.Contains(sniffSuffixes, s) || slices.Contains(proxySuffixes, s) || slices.Contains(otherSuffixes, s) {
		return true
	}
	for _, f := range aliasFamilies {
		if strings.HasPrefix(s, f) && len(s) > len(f) {
			return true
		}
	}
	return false
}

// RemoteSettings are the persistent cluster.remote.<alias>.* settings of one
// alias. Unset fields are empty or nil.
type RemoteSettings struct {
	// Mode is "sniff" or "proxy"; empty when not set (ES defaults to sniff).
	Mode                   string
	ProxyAddress           string
	ServerName             string
	SkipUnavailable        *bool
	ProxySocketConnections *int
	Seeds                  []string
	NodeConnections        *int
	// Other holds the alias's remaining keys by suffix (e.g.
	// "transport.compress", "signing.key", "proxy"), values as strings.
	Other map[string]string
	// keys are all suffixes present, for DeleteRemote.
	keys []string
}

// GetRemoteSettings returns the persistent remote cluster settings by alias
// (GET /_cluster/settings). Transient settings are ignored.
func (c *Client) GetRemoteSettings(ctx context.Context) (map[string]RemoteSettings, error) {
	flat, err := c.persistentFlat(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to get remote cluster settings: %w", err)
	}
	out, err := parseRemotes(flat)
	if err != nil {
		return nil, fmt.Errorf("failed to get remote cluster settings: %w", err)
	}
	return out, nil
}

// persistentFlat returns the persistent cluster settings as dotted keys.
func (c *Client) persistentFlat(ctx context.Context) (map[string]any, error) {
	var res struct {
		Persistent json.RawMessage `json:"persistent"`
	}
	flatSettings := true
	send := c.esapiSender(esapi.ClusterGetSettingsRequest{FlatSettings: &flatSettings})
	if err := c.call(ctx, send, &res); err != nil {
		return nil, err
	}
	flat := map[string]any{}
	if len(res.Persistent) > 0 && !bytes.Equal(res.Persistent, []byte("null")) {
		var tree map[string]any
		dec := json.NewDecoder(bytes.NewReader(res.Persistent))
		dec.UseNumber()
		if err := dec.Decode(&tree); err != nil {
			return nil, fmt.Errorf("failed to decode response: %w", err)
		}
		flatten("", tree, flat)
	}
	return flat, nil
}

// flatten turns nested settings into dotted keys; it accepts flat and
// nested forms alike (and mixtures).
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, child := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, child, out)
	}
}

func parseRemotes(flat map[string]any) (map[string]RemoteSettings, error) {
	out := map[string]RemoteSettings{}
	for _, key := range slices.Sorted(maps.Keys(flat)) {
		rest, ok := strings.CutPrefix(key, remotePrefix)
		if !ok {
			continue
		}
		alias, suffix, ok := strings.Cut(rest, ".")
		if !ok || !isAliasSuffix(suffix) {
			continue
		}
		rs := out[alias]
		if err := rs.set(suffix, flat[key]); err != nil {
			return nil, fmt.Errorf("setting [%s]: %w", key, err)
		}
		out[alias] = rs
	}
	return out, nil
}

// set stores one setting value; ES returns values as strings, lists as
// arrays of strings.
func (rs *RemoteSettings) set(suffix string, v any) error {
	rs.keys = append(rs.keys, suffix)
	if suffix == "seeds" {
		rs.Seeds = stringList(v)
		return nil
	}
	s := scalarString(v)
	switch suffix {
	case "mode":
		rs.Mode = strings.ToLower(s)
	case "proxy_address":
		rs.ProxyAddress = s
	case "server_name":
		rs.ServerName = s
	case "skip_unavailable":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("value %q is not a boolean", s)
		}
		rs.SkipUnavailable = &b
	case "proxy_socket_connections", "node_connections":
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("value %q is not an integer", s)
		}
		if suffix == "node_connections" {
			rs.NodeConnections = &n
		} else {
			rs.ProxySocketConnections = &n
		}
	default:
		if rs.Other == nil {
			rs.Other = map[string]string{}
		}
		rs.Other[suffix] = s
	}
	return nil
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = scalarString(p)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(x)
	}
}

func stringList(v any) []string {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, p := range x {
			out = append(out, scalarString(p))
		}
		return out
	case string:
		if x == "" {
			return nil
		}
		return strings.Split(x, ",")
	case nil:
		return nil
	default:
		return []string{fmt.Sprint(x)}
	}
}

func validateAlias(alias string) error {
	if !aliasPattern.MatchString(alias) {
		return fmt.Errorf("remote cluster alias %q must match [-A-Za-z0-9_]+", alias)
	}
	return nil
}
