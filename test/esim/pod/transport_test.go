package pod

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/test/esim"
)

// testCA is an ECK transport CA: self-signed, CN <es>-transport, OU <es>.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newTestCA issues a CA for es with key (a new one if nil) valid from notBefore to notAfter, as
// ECK's renewal does with the same key.
func newTestCA(t *testing.T, es string, key *ecdsa.PrivateKey, notBefore, notAfter time.Time) testCA {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: es + "-transport", OrganizationalUnit: []string{es}},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCA{cert: c, key: key}
}

func (c testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

func (c testCA) keyPEM(t *testing.T) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// testPod is a pod with ECK's Secrets as mounted files and its transport and remote cluster
// ports, without the Kubernetes plumbing.
type testPod struct {
	*Pod
	es string
}

// newTestPod starts a pod of Elasticsearch es whose transport CA is ca. extra are the CAs of the
// ConfigMap named by spec.transport.tls.certificateAuthorities, which ECK appends to the nodes'
// transport-certs/ca.crt; user is the nodeSet config.
func newTestPod(t *testing.T, es string, ca testCA, extra [][]byte, user map[string]any) *testPod {
	t.Helper()
	p := &Pod{
		opts: Options{Namespace: "ns", Name: es, IP: "127.0.0.1", Resolve: func(h string) string { return h }}, log: hclog.NewNullLogger(),
		kubelet: newKubeletState(Kubelet{SyncPeriod: time.Minute}, time.Now()), remote: map[string]remoteResult{}, rcsCert: &certCache{}, keystore: map[string][]byte{},
	}
	p.view = newVolumeView(p.kubelet)
	cfg, err := mergeUserConfig(eckDefaults(true, false), user)
	if err != nil {
		t.Fatal(err)
	}
	p.running = podSpec{Version: "8.13.4", NodeSet: "default", Config: cfg, Mounts: eckMounts(es, "default"), RemoteClusterServer: true}
	tp := &testPod{Pod: p, es: es}
	tp.setCA(t, ca, extra)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); p.Stop() })
	p.cancel = cancel
	if p.rcsLn, err = listenOn("127.0.0.1", 0); err != nil {
		t.Fatal(err)
	}
	go p.serveRemoteCluster(ctx)
	if err := p.listenTransport(ctx); err != nil {
		t.Fatal(err)
	}
	return tp
}

// setCA records what ECK writes for a transport CA and the extra CAs, visible at once.
func (tp *testPod) setCA(t *testing.T, ca testCA, extra [][]byte) {
	t.Helper()
	bundle := append([]byte{}, ca.pem()...)
	for _, e := range extra {
		bundle = append(bundle, e...)
	}
	tp.view.record(objectKey("secret", tp.es+"-es-transport-ca-internal"), time.Time{}, map[string][]byte{"tls.crt": ca.pem(), "tls.key": ca.keyPEM(t)}, false)
	tp.view.record(objectKey("secret", tp.es+"-es-default-es-transport-certs"), time.Time{}, map[string][]byte{"ca.crt": bundle}, false)
	tp.view.record(objectKey("secret", tp.es+"-es-remote-ca"), time.Time{}, map[string][]byte{"ca.crt": ca.pem()}, false)
}

// dial connects alias of tp to addr as a remote cluster in proxy mode.
func (tp *testPod) dial(addr, serverName string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tp.mu.Lock()
	spec := tp.running
	tp.mu.Unlock()
	return tp.connect(ctx, esim.RemoteClusterSettings{Alias: "remote", Mode: "proxy", ProxyAddress: addr, ServerName: serverName}, spec, time.Now())
}

func TestTransportPortCertificateModel(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	otherCA := newTestCA(t, "other", nil, now.Add(-time.Hour), now.Add(time.Hour))
	const serverName = "logs-es-transport.ns.svc"

	for _, tc := range []struct {
		name             string
		localTrusts      [][]byte // extra CAs of the local pod
		remoteTrusts     [][]byte // extra CAs of the remote pod
		localConfig      map[string]any
		remoteConfig     map[string]any
		credentials      bool
		remoteClusterRCS bool // dial the remote cluster port instead of the transport port
		serverName       string
		want             string // "" connects; else a part of the error
	}{
		{name: "mutual trust connects", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()}, serverName: serverName},
		{name: "user CAs beside the peer's", localTrusts: [][]byte{otherCA.pem(), remoteCA.pem()}, remoteTrusts: [][]byte{otherCA.pem(), localCA.pem()}, serverName: serverName},
		{name: "remote does not trust the local CA", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{otherCA.pem()},
			want: "the server did not accept this node's certificate"},
		{name: "local does not trust the remote CA", remoteTrusts: [][]byte{localCA.pem()}, want: "failed to establish trust with server"},
		{name: "verification_mode certificate ignores the server name", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()}, serverName: "elsewhere.example"},
		{name: "verification_mode full checks the server name", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()},
			localConfig: map[string]any{"xpack.security.transport.ssl.verification_mode": "full"}, serverName: serverName},
		{name: "verification_mode full refuses another name", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()},
			localConfig: map[string]any{"xpack.security.transport.ssl.verification_mode": "full"}, serverName: "elsewhere.example", want: "elsewhere.example"},
		{name: "credentials dial with the remote cluster client profile: no client certificate", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()},
			credentials: true, want: "certificate required"},
		{name: "credentials on the transport port with client authentication optional", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()},
			remoteConfig: map[string]any{"xpack.security.transport.ssl.client_authentication": "optional"}, credentials: true,
			want: "remote cluster handshake action requires channel profile to be [_remote_cluster], but got [default]"},
		{name: "no credentials on the remote cluster port", localTrusts: [][]byte{remoteCA.pem()}, remoteTrusts: [][]byte{localCA.pem()}, remoteClusterRCS: true,
			want: "require transport header [_cross_cluster_access_credentials] but none found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newTestPod(t, "logs", remoteCA, tc.remoteTrusts, tc.remoteConfig)
			local := newTestPod(t, "ccs", localCA, tc.localTrusts, tc.localConfig)
			if tc.credentials {
				local.keystore["cluster.remote.remote.credentials"] = []byte("aWQ6c2VjcmV0")
				// The API-key profile trusts the transport CA files too (ECK's same-environment
				// entries), so the remote's server certificate passes.
				local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)
			}
			addr := remote.TransportAddress()
			if tc.remoteClusterRCS {
				addr = remote.rcsLn.Addr().String()
			}
			err := local.dial(addr, tc.serverName)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want connected, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

// TestTransportPortSurvivesSameKeyRotation: ECK renews a CA with the same key and subject, and
// keeps no old CA in any bundle. A peer's copy of the old CA keeps verifying the new
// certificates until it expires; then only a copy of the new CA does.
func TestTransportPortSurvivesSameKeyRotation(t *testing.T) {
	now := time.Now()
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	oldLocal := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	renewed := newTestCA(t, "ccs", oldLocal.key, now.Add(-time.Minute), now.Add(2*time.Hour))
	expiredCopy := newTestCA(t, "ccs", oldLocal.key, now.Add(-2*time.Hour), now.Add(-time.Minute))

	// The local pod now presents a certificate issued by the renewed CA.
	local := newTestPod(t, "ccs", renewed, [][]byte{remoteCA.pem()}, nil)
	for _, tc := range []struct {
		name   string
		copies [][]byte
		ok     bool
	}{
		{"stale copy of the old CA, still valid", [][]byte{oldLocal.pem()}, true},
		{"stale copy expired", [][]byte{expiredCopy.pem()}, false},
		{"expired copy and the renewed CA", [][]byte{expiredCopy.pem(), renewed.pem()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newTestPod(t, "logs", remoteCA, tc.copies, nil)
			err := local.dial(remote.TransportAddress(), "logs-es-transport.ns.svc")
			if (err == nil) != tc.ok {
				t.Fatalf("connected=%v (%v), want %v", err == nil, err, tc.ok)
			}
		})
	}
}

// TestTransportTrustFollowsTheMountedFile: a CA added to the ConfigMap counts once the kubelet
// shows the new transport-certs/ca.crt, not before.
func TestTransportTrustFollowsTheMountedFile(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remote := newTestPod(t, "logs", remoteCA, nil, nil)
	local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, nil)
	if err := local.dial(remote.TransportAddress(), ""); err == nil {
		t.Fatal("connected before the remote trusts the local CA")
	}
	// ECK updates the Secret now; the pod's file follows at the kubelet's next sync.
	bundle := append(remoteCA.pem(), localCA.pem()...)
	remote.view.record(objectKey("secret", "logs-es-default-es-transport-certs"), time.Now(), map[string][]byte{"ca.crt": bundle}, false)
	if err := local.dial(remote.TransportAddress(), ""); err == nil {
		t.Fatal("connected before the kubelet updated the mounted file")
	}
	remote.kubelet.syncNow(time.Now())
	if err := local.dial(remote.TransportAddress(), ""); err != nil {
		t.Fatalf("not connected after the file was updated: %v", err)
	}
}
