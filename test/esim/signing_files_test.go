package esim

import (
	"testing"
)

func TestSigningSettingsNameExistingFiles(t *testing.T) {
	exists := map[string]bool{
		"/usr/share/elasticsearch/config/rcs-signing/tls.crt":   true,
		"/usr/share/elasticsearch/config/rcs-signing/tls.key":   true,
		"/usr/share/elasticsearch/config/rcs-signing-ca/ca.crt": true,
	}
	files := func(p string) (string, bool) {
		if p[0] != '/' {
			p = "/usr/share/elasticsearch/config/" + p
		}
		return p, exists[p]
	}
	const enable = `"cluster.remote.a.mode":"proxy","cluster.remote.a.proxy_address":"h:9443",`
	for _, tc := range []struct {
		name, version, body string
		status              int
		reason              string
	}{
		{"signing files exist", "9.3.0", `{"persistent":{` + enable + `"cluster.remote.a.signing.certificate":"rcs-signing/tls.crt","cluster.remote.a.signing.key":"rcs-signing/tls.key"}}`, 200, ""},
		{"signing key missing", "9.3.0", `{"persistent":{` + enable + `"cluster.remote.a.signing.certificate":"rcs-signing/tls.crt","cluster.remote.a.signing.key":"rcs-signing/missing.key"}}`, 400,
			"Configured file [/usr/share/elasticsearch/config/rcs-signing/missing.key] not found"},
		{"absolute path missing", "9.3.0", `{"transient":{` + enable + `"cluster.remote.a.signing.certificate":"/etc/x.crt"}}`, 400, "Configured file [/etc/x.crt] not found"},
		{"trusted CAs exist", "9.3.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"]}}`, 200, ""},
		{"one trusted CA file missing", "9.3.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt","other/ca.crt"]}}`, 400,
			"Configured file [/usr/share/elasticsearch/config/other/ca.crt] not found"},
		{"removing needs no file", "9.3.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":null}}`, 200, ""},
		{"not a file setting", "9.3.0", `{"persistent":{"cluster.remote.signing.diagnose.trust":false}}`, 200, ""},
		{"trusted CAs and a truststore", "9.3.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"],` +
			`"cluster.remote.signing.truststore.path":"rcs-signing/tls.crt"}}`, 400,
			"cannot specify both [cluster.remote.signing.certificate_authorities] and [cluster.remote.signing.truststore.path]"},
		{"trusted CAs and a transient truststore", "9.3.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"]},` +
			`"transient":{"cluster.remote.signing.truststore.path":"rcs-signing/tls.crt"}}`, 400,
			"cannot specify both [cluster.remote.signing.certificate_authorities] and [cluster.remote.signing.truststore.path]"},
		{"signing key and keystore", "9.3.0", `{"persistent":{` + enable + `"cluster.remote.a.signing.key":"rcs-signing/tls.key","cluster.remote.a.signing.keystore.path":"rcs-signing/tls.crt"}}`, 400,
			"cannot specify both [cluster.remote.a.signing.key] and [cluster.remote.a.signing.keystore.path]"},
		{"below 9.3 the setting is unknown", "9.2.0", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"]}}`, 400,
			"persistent setting [cluster.remote.signing.certificate_authorities], not recognized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.version)
			e.n.SetFileFunc(files)
			r := e.do("PUT", "/_cluster/settings", tc.body)
			if tc.status == 200 {
				if r.status != 200 {
					t.Fatalf("got %d %s", r.status, r.raw)
				}
				return
			}
			wantErr(t, r, tc.status, "illegal_argument_exception", tc.reason)
		})
	}
}
