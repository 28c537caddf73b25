package pod

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// configDir is where Elasticsearch resolves relative paths in its configuration.
const configDir = "/usr/share/elasticsearch/config"

// Settings is a flattened elasticsearch.yml: dotted keys to scalar values or string lists.
type Settings map[string]any

// String returns the setting as a string ("" if unset).
func (s Settings) String(key string) string {
	switch v := s[key].(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ",")
	default:
		return fmt.Sprint(v)
	}
}

// Bool returns the setting as a boolean, or def if unset.
func (s Settings) Bool(key string, def bool) bool {
	switch v := s[key].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	default:
		return def
	}
}

// List returns a list setting; a scalar counts as a one-element list (as ES reads it).
func (s Settings) List(key string) []string {
	switch v := s[key].(type) {
	case nil:
		return nil
	case []string:
		return v
	default:
		return []string{s.String(key)}
	}
}

// eckDefaults returns the configuration ECK 3.5.0 writes before the user's nodeSet config is merged
// over it (pkg/controller/elasticsearch/settings/merged_config.go, xpackConfig and baseConfig):
// only the keys esim acts on. ECK sets the remote_cluster_client keys only for its own
// same-environment API-key remotes (spec.remoteClusters[].apiKey).
func eckDefaults(remoteClusterServer, remoteClusterClient bool) Settings {
	s := Settings{
		"xpack.security.transport.ssl.enabled":           "true",
		"xpack.security.transport.ssl.verification_mode": "certificate",
		"xpack.security.transport.ssl.certificate_authorities": []string{
			path.Join(configDir, "transport-certs/ca.crt"),
			path.Join(configDir, "transport-remote-certs/ca.crt"),
		},
	}
	if remoteClusterServer {
		s["remote_cluster_server.enabled"] = "true"
		s["xpack.security.remote_cluster_server.ssl.certificate_authorities"] = []string{
			path.Join(configDir, "transport-certs/ca.crt"),
			path.Join(configDir, "transport-remote-certs/ca.crt"),
		}
	}
	if remoteClusterClient {
		s["xpack.security.remote_cluster_client.ssl.enabled"] = true
		s["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = []string{
			path.Join(configDir, "transport-certs/ca.crt"),
			path.Join(configDir, "transport-remote-certs/ca.crt"),
		}
	}
	return s
}

// mergeUserConfig flattens the nodeSet's user config and lays it over base, as ECK's canonical
// config merge does: user keys win, and a user list replaces ECK's list entirely.
func mergeUserConfig(base Settings, user map[string]any) (Settings, error) {
	out := Settings{}
	for k, v := range base {
		out[k] = v
	}
	flat := Settings{}
	if err := flatten("", user, flat); err != nil {
		return nil, err
	}
	for k, v := range flat {
		out[k] = v
	}
	return out, nil
}

// flatten turns nested maps into dotted keys. Both forms may be mixed, as in elasticsearch.yml;
// a key given twice is an error, as ES refuses duplicate settings.
func flatten(prefix string, in map[string]any, out Settings) error {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		full := k
		if prefix != "" {
			full = prefix + "." + k
		}
		switch v := in[k].(type) {
		case map[string]any:
			if err := flatten(full, v, out); err != nil {
				return err
			}
		case []any:
			list := make([]string, 0, len(v))
			for _, item := range v {
				list = append(list, fmt.Sprint(item))
			}
			if _, dup := out[full]; dup {
				return fmt.Errorf("duplicate settings key [%s]", full)
			}
			out[full] = list
		default:
			if _, dup := out[full]; dup {
				return fmt.Errorf("duplicate settings key [%s]", full)
			}
			out[full] = v
		}
	}
	return nil
}

// resolvePath makes a config path absolute the way ES does (relative to the config directory).
func resolvePath(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(configDir, p)
}
