package pod

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// supportedVersions are the Elasticsearch versions the README states as supported: the oldest
// with cross-cluster API keys that ecklink accepts (8.14), the last 8.x minor, the first 9.x,
// the first with strong identity (9.3) and the first with hot-reloaded file-based secure
// settings (9.5). TestLinkLifecycleVersions runs the link lifecycle on each.
var supportedVersions = []struct {
	version string
	// skipUnavailable is the default of cluster.remote.<alias>.skip_unavailable (true since 8.15).
	skipUnavailable bool
	// strongIdentity: the API key's certificate_identity exists (9.3+).
	strongIdentity bool
}{
	{"8.14.3", false, false},
	{"8.19.2", true, false},
	{"9.0.4", true, false},
	{"9.3.1", true, true},
	{"9.5.0", true, true},
}

// restStatus calls the node's REST API as elastic and returns the status and raw body.
func (tp *testPod) restStatus(t *testing.T, method, p, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, p, strings.NewReader(body))
	r.SetBasicAuth("elastic", "pw")
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	tp.node.Handler().ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// TestLinkLifecycleVersions runs the API-key link lifecycle ecklink drives, on both sides at the
// same version, for every supported version: create the cross-cluster key on the remote, apply
// it and the remote CA on the local side, configure the alias, connect over the remote cluster
// port with a real TLS handshake, update the access in place (same key), rotate
// make-before-break (new key connects, the old one is then refused), strong identity where the
// version has it, and removal.
func TestLinkLifecycleVersions(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	for _, v := range supportedVersions {
		t.Run(v.version, func(t *testing.T) {
			remote := newTestPod(t, "logs", remoteCA, [][]byte{localCA.pem()}, nil).withNode(t, v.version)
			local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, nil).withNode(t, v.version)
			local.node.SetRemoteStatusFunc(local.remoteStatus)
			// The remote CA reaches the remote cluster client's trust (ecklink's CA ConfigMap;
			// here through the transport CA files, which that list keeps anyway).
			local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)
			useKey := func(encoded string) { local.keystore["cluster.remote.logs.credentials"] = []byte(encoded) }
			remoteInfo := func() map[string]any {
				t.Helper()
				local.checkRemotes(t.Context(), time.Now())
				info, _ := local.rest(t, "GET", "/_remote/info", "")["logs"].(map[string]any)
				return info
			}
			connected := func(step string) {
				t.Helper()
				if info := remoteInfo(); info["connected"] != true {
					t.Fatalf("%s: not connected: %s", step, local.RemoteError("logs"))
				}
			}
			refused := func(step, want string) {
				t.Helper()
				if info := remoteInfo(); info["connected"] != false || !strings.Contains(local.RemoteError("logs"), want) {
					t.Fatalf("%s: connected=%v reason %q, want refused with %q", step, info["connected"], local.RemoteError("logs"), want)
				}
			}

			key1 := remote.rest(t, "POST", "/_security/cross_cluster/api_key", `{"name":"ecklink-east-logs","access":{"search":[{"names":["logs-*"]}]},"metadata":{"ecklink":{"peer":"east"}}}`)
			useKey(key1["encoded"].(string))
			local.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.logs.mode":"proxy","cluster.remote.logs.proxy_address":"`+
				remote.rcsLn.Addr().String()+`"}}`)
			info := remoteInfo()
			if info["skip_unavailable"] != v.skipUnavailable {
				t.Errorf("skip_unavailable default %v, want %v", info["skip_unavailable"], v.skipUnavailable)
			}
			connected("created")

			upd := remote.rest(t, "PUT", "/_security/cross_cluster/api_key/"+key1["id"].(string),
				`{"access":{"search":[{"names":["logs-*"]}],"replication":[{"names":["audit-*"]}]}}`)
			if upd["updated"] != true {
				t.Fatalf("access update: %v, want updated", upd)
			}
			connected("access updated in place")

			key2 := remote.rest(t, "POST", "/_security/cross_cluster/api_key", `{"name":"ecklink-east-logs","access":{"search":[{"names":["logs-*"]}]}}`)
			useKey(key2["encoded"].(string))
			connected("rotated to the new key")
			remote.rest(t, "DELETE", "/_security/api_key", `{"ids":["`+key1["id"].(string)+`"]}`)
			useKey(key1["encoded"].(string))
			refused("old key after invalidation", "has been invalidated")
			useKey(key2["encoded"].(string))
			connected("new key after the old one was invalidated")

			code, body := remote.restStatus(t, "PUT", "/_security/cross_cluster/api_key/"+key2["id"].(string),
				`{"access":{"search":[{"names":["logs-*"]}]},"certificate_identity":"^CN=ccs\\.ns\\.local,OU=ecklink$"}`)
			switch {
			case v.strongIdentity && code != http.StatusOK:
				t.Errorf("certificate_identity on %s: %d %s, want 200", v.version, code, body)
			case !v.strongIdentity && (code != http.StatusBadRequest || !strings.Contains(body, "certificate_identity")):
				t.Errorf("certificate_identity on %s: %d %s, want 400 naming the field", v.version, code, body)
			}
			if v.strongIdentity {
				// Keys that require a signer refuse the unsigned connection: ecklink turns this on
				// only after the local side signs.
				refused("identity required, unsigned", "no signature was provided")
				remote.rest(t, "PUT", "/_security/cross_cluster/api_key/"+key2["id"].(string), `{"certificate_identity":null}`)
				connected("identity cleared")
			}

			remote.rest(t, "DELETE", "/_security/api_key", `{"ids":["`+key2["id"].(string)+`"]}`)
			refused("removed", "has been invalidated")
			local.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.logs.mode":null,"cluster.remote.logs.proxy_address":null}}`)
			var all map[string]any
			_, raw := local.restStatus(t, "GET", "/_remote/info", "")
			if err := json.Unmarshal([]byte(raw), &all); err != nil || len(all) != 0 {
				t.Errorf("_remote/info after removal: %s, want {}", raw)
			}
		})
	}
}
