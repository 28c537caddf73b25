package pod

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// issueSigning issues a signing certificate (clientAuth) for subject from ca and returns the PEM
// certificate and key.
func issueSigning(t *testing.T, ca testCA, cn string, notAfter time.Time) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"ecklink"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// withNode gives tp a node of version v and runs its pod spec at v.
func (tp *testPod) withNode(t *testing.T, v string) *testPod {
	t.Helper()
	n, err := esim.NewNode(esim.Config{Version: v, ClusterName: tp.es, NodeName: tp.es + "-es-default-0"})
	if err != nil {
		t.Fatal(err)
	}
	n.SetUser("elastic", "pw")
	n.SetFileFunc(tp.fileExists)
	tp.node = n
	tp.running.Version = v
	return tp
}

// rest calls the node's REST API as elastic and returns the decoded body.
func (tp *testPod) rest(t *testing.T, method, p, body string) map[string]any {
	t.Helper()
	r := httptest.NewRequest(method, p, strings.NewReader(body))
	r.SetBasicAuth("elastic", "pw")
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	tp.node.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, p, w.Code, w.Body.String())
	}
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return out
}

// mountSecret mounts Secret name at config/<dir> with data, visible at once.
func (tp *testPod) mountSecret(dir, name string, data map[string][]byte) {
	tp.running.Mounts = append(tp.running.Mounts, mount{Path: path.Join(configDir, dir), Kind: "secret", Name: name})
	tp.view.record(objectKey("secret", name), time.Time{}, data, false)
}

func TestStrongIdentityOnTheRemoteClusterPort(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	signingCA := newTestCA(t, "signing", nil, now.Add(-time.Hour), now.Add(time.Hour))
	otherCA := newTestCA(t, "other", nil, now.Add(-time.Hour), now.Add(time.Hour))
	goodCert, goodKey := issueSigning(t, signingCA, "ccs.ns.local", now.Add(time.Hour))
	otherCert, otherKey := issueSigning(t, otherCA, "ccs.ns.local", now.Add(time.Hour))
	wrongCert, wrongKey := issueSigning(t, signingCA, "thief.ns.local", now.Add(time.Hour))
	const identity = `^CN=ccs\\.ns\\.local,OU=ecklink$`
	signingConfig := map[string]any{
		"cluster.remote.remote.signing.certificate": "rcs-signing/tls.crt",
		"cluster.remote.remote.signing.key":         "rcs-signing/tls.key",
	}
	trustConfig := map[string]any{keySigningCAs: "rcs-signing-ca/ca.crt"}

	for _, tc := range []struct {
		name                        string
		localVersion, remoteVersion string
		identity                    bool
		signing                     bool // the local alias has signing settings
		cert, key                   []byte
		trust                       bool // the remote trusts the signing CA
		want                        string
	}{
		{name: "identity and a trusted matching signer", localVersion: "9.3.0", remoteVersion: "9.3.0", identity: true, signing: true,
			cert: goodCert, key: goodKey, trust: true},
		{name: "no identity, no signing", localVersion: "9.3.0", remoteVersion: "9.3.0"},
		{name: "no identity, trusted signer", localVersion: "9.3.0", remoteVersion: "9.3.0", signing: true, cert: goodCert, key: goodKey, trust: true},
		{name: "identity but the local does not sign", localVersion: "9.3.0", remoteVersion: "9.3.0", identity: true, trust: true,
			want: "Expected signature for cross cluster API key, but no signature was provided"},
		{name: "identity, local below 9.3 cannot sign", localVersion: "9.2.1", remoteVersion: "9.3.0", identity: true, signing: true,
			cert: goodCert, key: goodKey, trust: true, want: "Expected signature for cross cluster API key"},
		{name: "signer of another CA", localVersion: "9.3.0", remoteVersion: "9.3.0", identity: true, signing: true,
			cert: otherCert, key: otherKey, trust: true, want: "Failed to verify cross cluster api key signature certificate from [(CN=ccs.ns.local,OU=ecklink;X.509;SHA1:"},
		{name: "untrusted signer breaks a key without identity", localVersion: "9.3.0", remoteVersion: "9.3.0", signing: true,
			cert: goodCert, key: goodKey, want: "Failed to verify cross cluster api key signature certificate"},
		{name: "another subject of the trusted CA (a copied key)", localVersion: "9.3.0", remoteVersion: "9.3.0", identity: true, signing: true,
			cert: wrongCert, key: wrongKey, trust: true, want: "DN from provided signature [CN=thief.ns.local,OU=ecklink] does not match"},
		{name: "key of another certificate: nothing signed", localVersion: "9.3.0", remoteVersion: "9.3.0", identity: true, signing: true,
			cert: goodCert, key: otherKey, trust: true, want: "Expected signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var remoteCfg, localCfg map[string]any
			if tc.trust {
				remoteCfg = trustConfig
			}
			if tc.signing {
				localCfg = signingConfig
			}
			remote := newTestPod(t, "logs", remoteCA, [][]byte{localCA.pem()}, remoteCfg).withNode(t, tc.remoteVersion)
			remote.mountSecret("rcs-signing-ca", "logs-ecklink-signing-ca", map[string][]byte{"ca.crt": signingCA.pem()})
			local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, localCfg).withNode(t, tc.localVersion)
			local.mountSecret("rcs-signing", "ccs-ecklink-signing", map[string][]byte{"tls.crt": tc.cert, "tls.key": tc.key})
			body := `{"name":"k","access":{"search":[{"names":["*"]}]}`
			if tc.identity {
				body += `,"certificate_identity":"` + identity + `"`
			}
			key := remote.rest(t, "POST", "/_security/cross_cluster/api_key", body+"}")
			local.keystore["cluster.remote.remote.credentials"] = []byte(key["encoded"].(string))
			local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)

			err := local.dial(remote.rcsLn.Addr().String(), "")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want connected, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

// TestStrongIdentityFailureInRemoteInfo: a refused signature shows as connected false in
// GET /_remote/info, with the reason in RemoteError, and recovers once the remote trusts the CA.
func TestStrongIdentityFailureInRemoteInfo(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	signingCA := newTestCA(t, "signing", nil, now.Add(-time.Hour), now.Add(time.Hour))
	cert, key := issueSigning(t, signingCA, "ccs.ns.local", now.Add(time.Hour))
	remote := newTestPod(t, "logs", remoteCA, [][]byte{localCA.pem()}, nil).withNode(t, "9.3.0")
	local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, nil).withNode(t, "9.3.0")
	local.node.SetRemoteStatusFunc(local.remoteStatus)
	local.mountSecret("rcs-signing", "ccs-ecklink-signing", map[string][]byte{"tls.crt": cert, "tls.key": key})
	remote.mountSecret("rcs-signing-ca", "logs-ecklink-signing-ca", map[string][]byte{"ca.crt": signingCA.pem()})
	k := remote.rest(t, "POST", "/_security/cross_cluster/api_key",
		`{"name":"k","access":{"search":[{"names":["*"]}]},"certificate_identity":"^CN=ccs\\.ns\\.local,OU=ecklink$"}`)
	local.keystore["cluster.remote.remote.credentials"] = []byte(k["encoded"].(string))
	local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)
	local.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.remote.mode":"proxy","cluster.remote.remote.proxy_address":"`+
		remote.rcsLn.Addr().String()+`","cluster.remote.remote.signing.certificate":"rcs-signing/tls.crt","cluster.remote.remote.signing.key":"rcs-signing/tls.key"}}`)

	check := func() (bool, string) {
		local.checkRemotes(t.Context(), time.Now())
		info := local.rest(t, "GET", "/_remote/info", "")
		return info["remote"].(map[string]any)["connected"].(bool), local.RemoteError("remote")
	}
	if connected, reason := check(); connected || !strings.Contains(reason, "Failed to verify cross cluster api key signature certificate") {
		t.Fatalf("without trust: connected=%v reason=%q", connected, reason)
	}
	remote.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"]}}`)
	if connected, reason := check(); !connected || reason != "" {
		t.Fatalf("with trust: connected=%v reason=%q", connected, reason)
	}
}

// TestStrongIdentityLiveOrder steps a connected link through enabling and disabling strong
// identity and samples the connection after each step. Trust, then signing, then the key's
// identity (and the reverse to disable) never disconnects; setting the identity before the local
// cluster signs does, because the remote then requires a signature the local does not send yet.
func TestStrongIdentityLiveOrder(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	signingCA := newTestCA(t, "signing", nil, now.Add(-time.Hour), now.Add(time.Hour))
	cert, key := issueSigning(t, signingCA, "ccs.ns.local", now.Add(time.Hour))

	type step struct {
		name string
		do   func(remote, local *testPod, keyID string)
	}
	trust := step{"remote trusts the signing CA", func(r, _ *testPod, _ string) {
		r.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.signing.certificate_authorities":["rcs-signing-ca/ca.crt"]}}`)
	}}
	untrust := step{"remote drops the signing CA", func(r, _ *testPod, _ string) {
		r.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.signing.certificate_authorities":null}}`)
	}}
	sign := step{"local signs", func(_, l *testPod, _ string) {
		l.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.remote.signing.certificate":"rcs-signing/tls.crt","cluster.remote.remote.signing.key":"rcs-signing/tls.key"}}`)
	}}
	unsign := step{"local stops signing", func(_, l *testPod, _ string) {
		l.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.remote.signing.certificate":null,"cluster.remote.remote.signing.key":null}}`)
	}}
	identity := step{"key requires the identity", func(r, _ *testPod, id string) {
		r.rest(t, "PUT", "/_security/cross_cluster/api_key/"+id, `{"certificate_identity":"^CN=ccs\\.ns\\.local,OU=ecklink$"}`)
	}}
	noIdentity := step{"key identity cleared", func(r, _ *testPod, id string) {
		r.rest(t, "PUT", "/_security/cross_cluster/api_key/"+id, `{"certificate_identity":null}`)
	}}

	for _, tc := range []struct {
		name  string
		steps []step
		// want is the connection sampled after each step.
		want []bool
	}{
		{"enable: trust, sign, identity", []step{trust, sign, identity}, []bool{true, true, true}},
		{"enable then disable in reverse", []step{trust, sign, identity, noIdentity, unsign, untrust}, []bool{true, true, true, true, true, true}},
		{"enable: identity before signing breaks", []step{trust, identity, sign}, []bool{true, false, true}},
		{"enable: signing before trust breaks", []step{sign, trust, identity}, []bool{false, true, true}},
		{"disable: trust removed while signing breaks", []step{trust, sign, untrust}, []bool{true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newTestPod(t, "logs", remoteCA, [][]byte{localCA.pem()}, nil).withNode(t, "9.3.0")
			local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, nil).withNode(t, "9.3.0")
			local.node.SetRemoteStatusFunc(local.remoteStatus)
			local.mountSecret("rcs-signing", "ccs-ecklink-signing", map[string][]byte{"tls.crt": cert, "tls.key": key})
			remote.mountSecret("rcs-signing-ca", "logs-ecklink-signing-ca", map[string][]byte{"ca.crt": signingCA.pem()})
			k := remote.rest(t, "POST", "/_security/cross_cluster/api_key", `{"name":"k","access":{"search":[{"names":["*"]}]}}`)
			local.keystore["cluster.remote.remote.credentials"] = []byte(k["encoded"].(string))
			local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)
			local.rest(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.remote.mode":"proxy","cluster.remote.remote.proxy_address":"`+
				remote.rcsLn.Addr().String()+`"}}`)
			sample := func() bool {
				local.checkRemotes(t.Context(), time.Now())
				return local.rest(t, "GET", "/_remote/info", "")["remote"].(map[string]any)["connected"].(bool)
			}
			if !sample() {
				t.Fatalf("not connected before the first step: %s", local.RemoteError("remote"))
			}
			for i, s := range tc.steps {
				s.do(remote, local, k["id"].(string))
				if got := sample(); got != tc.want[i] {
					t.Errorf("after %q: connected=%v, want %v (%s)", s.name, got, tc.want[i], local.RemoteError("remote"))
				}
			}
		})
	}
}
