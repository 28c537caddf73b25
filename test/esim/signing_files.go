package esim

import (
	"regexp"
	"sort"
	"strings"
)

// signingFileKey matches the 9.3+ signing settings whose values name files.
var signingFileKey = regexp.MustCompile(`^cluster\.remote\.(?:[-\w]+\.signing\.(?:certificate|key|keystore\.path)|signing\.(?:certificate_authorities|truststore\.path))$`)

// SetFileFunc sets how the node checks the files named by the signing settings
// (cluster.remote.<alias>.signing.certificate, .key, .keystore.path and
// cluster.remote.signing.certificate_authorities, .truststore.path): f returns the path resolved
// against the config directory and whether the file exists on the node. A settings update that
// names a missing file fails with ES's "Configured file [..] not found". With none set, files are
// not checked.
func (n *Node) SetFileFunc(f func(path string) (resolved string, exists bool)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fileFunc = f
}

// checkSigningFiles checks the files named in a settings update (9.3+). It runs before the
// update takes the node's lock, so f may call back into the caller's own state.
func (n *Node) checkSigningFiles(updates ...map[string]settingValue) *Error {
	if !n.ver.hasSigningSettings() {
		return nil
	}
	n.mu.Lock()
	f := n.fileFunc
	n.mu.Unlock()
	if f == nil {
		return nil
	}
	for _, u := range updates {
		keys := make([]string, 0, len(u))
		for k := range u {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := u[k]
			if v.null || !signingFileKey.MatchString(k) {
				continue
			}
			for _, p := range v.asList() {
				if resolved, ok := f(p); !ok {
					// [mem] the exception type; the message is ES's.
					return iae("Configured file [%s] not found", resolved)
				}
			}
		}
	}
	return nil
}

// checkSigningExclusive is SslConfigurationLoader's refusal of two sources for the same material,
// checked on the merged settings: a signing key file and a keystore for one alias, or trusted CA
// files and a truststore. [mem] the exception type; the message is SslConfigException's.
func checkSigningExclusive(s settingsMap) *Error {
	if _, ok := s["cluster.remote.signing.certificate_authorities"]; ok {
		if _, ok := s["cluster.remote.signing.truststore.path"]; ok {
			return iae("cannot specify both [cluster.remote.signing.certificate_authorities] and [cluster.remote.signing.truststore.path]")
		}
	}
	for _, k := range sortedKeys(s) {
		prefix, ok := strings.CutSuffix(k, ".signing.key")
		if !ok || !strings.HasPrefix(prefix, "cluster.remote.") {
			continue
		}
		if _, both := s[prefix+".signing.keystore.path"]; both {
			return iae("cannot specify both [%s.signing.key] and [%s.signing.keystore.path]", prefix, prefix)
		}
	}
	return nil
}
