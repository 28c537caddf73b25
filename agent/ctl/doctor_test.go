package ctl

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// remoteClusterServer serves TLS with testdata's server certificate (issued by transport-ca
// for logs-es-remote-cluster.ns.svc) and returns its address.
func remoteClusterServer(t *testing.T) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join("testdata", "server.pem"), filepath.Join("testdata", "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return testenv.HandshakeServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil)
}

// doctorWorld is environment west with one RemoteCluster per fault, all served by the same
// remote cluster server at addr.
func doctorWorld(t *testing.T, addr string) *env {
	_, eastPEM := readPEM(t, "agent-east")
	transport, transportPEM := readPEM(t, "transport-ca")
	_, otherPEM := readPEM(t, "other-ca")
	east := pairing.NewPeer(agentNS, "east", eastPEM, []string{"agent.east.example:9400"}, true, "")
	east.Status = v1alpha1.PeerStatus{
		Conditions:    []metav1.Condition{cond(v1alpha1.ConditionConnected, "True", v1alpha1.ReasonStreamEstablished, "stream established")},
		LastHeartbeat: mt(testNow.Add(-2 * time.Second)), PeerVersion: "0.1.0",
	}
	north := pairing.NewPeer(agentNS, "north", eastPEM, []string{"agent.north.example:9400"}, true, "")
	north.Status.Conditions = []metav1.Condition{cond(v1alpha1.ConditionConnected, "False", v1alpha1.ReasonDialFailed, "failed to connect to peer \"north\": connection refused")}
	applied := []v1alpha1.CertificateInfo{{Fingerprint: pemutil.Fingerprint(transport)}}
	link := func(name, es, peer, proxy, serverName string) *v1alpha1.RemoteCluster {
		return &v1alpha1.RemoteCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es}, Alias: name, Peer: peer,
				Export: v1alpha1.ExportReference{Namespace: "ns", Name: "logs"}},
			Status: v1alpha1.RemoteClusterStatus{
				Conditions:   []metav1.Condition{cond(v1alpha1.ConditionReady, "True", v1alpha1.ReasonReady, "ready")},
				ProxyAddress: proxy, ServerName: serverName, RemoteCertificateAuthorities: applied,
				APIKey: &v1alpha1.AppliedAPIKey{ID: "key-" + name, Expiration: mt(testNow.Add(30 * 24 * time.Hour))},
			},
		}
	}
	sn := "logs-es-remote-cluster.ns.svc"
	// The agent's own probe, from its cluster: it reaches the address doctor cannot.
	probed := func(rc *v1alpha1.RemoteCluster, ok bool, reason, msg string) *v1alpha1.RemoteCluster {
		status := "False"
		if ok {
			status = "True"
		}
		rc.Status.Conditions = append(rc.Status.Conditions, cond(v1alpha1.ConditionProbeSucceeded, status, reason, msg))
		return rc
	}
	caMap := func(es string, pem []byte) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: wiring.CAConfigMapName(es)}, Data: map[string]string{wiring.CAFileKey: string(pem)}}
	}
	return fakeEnv(t, []runtime.Object{
		identityConfigMap(t, "west", nil, "agent-west"),
		caMap("ccs", transportPEM), caMap("ccs-stale", otherPEM),
	}, east, north,
		probed(link("healthy", "ccs", "east", addr, sn), true, v1alpha1.ReasonHandshakeVerified, "TLS handshake verified (2ms)"),
		probed(link("stale-ca", "ccs-stale", "east", addr, sn), false, v1alpha1.ReasonCertificateUntrusted, "does not verify with ConfigMap ccs-stale-ecklink-remote-ca"),
		link("wrong-name", "ccs", "east", addr, "wrong.example.com"),
		probed(link("unreachable", "ccs", "east", "127.0.0.1:1", sn), true, v1alpha1.ReasonHandshakeVerified, "TLS handshake verified (1ms)"),
		link("peer-down", "ccs", "north", addr, sn),
	)
}

func TestDoctorGolden(t *testing.T) {
	addr := remoteClusterServer(t)
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := runCtl(t, map[string]*env{"west": doctorWorld(t, addr)}, "doctor", "--context", "west", "-o", format, "--dial-timeout", "2s")
			if code != ExitCheckFailed {
				t.Fatalf("exit %d, want %d: %s", code, ExitCheckFailed, errOut)
			}
			golden(t, "doctor."+format+".golden", strings.ReplaceAll(out, addr, "remote.example:9443"))
		})
	}
}

func TestDoctorVerdicts(t *testing.T) {
	addr := remoteClusterServer(t)
	tests := []struct {
		link, failing, item string
	}{
		{"healthy", "", ""},
		{"stale-ca", checkRemoteCA, "ConfigMap ns/ccs-stale-ecklink-remote-ca key ca.crt"},
		{"wrong-name", checkServerName, "server name wrong.example.com"},
		{"unreachable", checkProxy, "proxy address 127.0.0.1:1"},
		{"peer-down", checkPeer, "Peer ecklink/north"},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			code, out, errOut := runCtl(t, map[string]*env{"west": doctorWorld(t, addr)}, "doctor", "ns/"+tt.link, "--context", "west", "--dial-timeout", "2s")
			want := ExitCheckFailed
			if tt.failing == "" {
				want = ExitOK
			}
			if code != want {
				t.Fatalf("exit %d, want %d: %s\n%s", code, want, errOut, out)
			}
			if tt.failing != "" && !strings.Contains(out, "=> "+tt.failing+" fails: "+tt.item) {
				t.Fatalf("verdict not found in:\n%s", out)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		code, _, errOut := runCtl(t, map[string]*env{"west": doctorWorld(t, addr)}, "doctor", "ns/nope", "--context", "west")
		if code != ExitFailed || !strings.Contains(errOut, "no RemoteCluster ns/nope") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// TestDoctorWithoutTLS makes sure a server that is not TLS is reported as such, not as a CA.
func TestDoctorWithoutTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	code, out, _ := runCtl(t, map[string]*env{"west": doctorWorld(t, ln.Addr().String())}, "doctor", "ns/healthy", "--context", "west", "--dial-timeout", "2s")
	if code != ExitCheckFailed || !strings.Contains(out, "=> remote-ca fails: remote cluster server "+ln.Addr().String()) || !strings.Contains(out, "TLS handshake failed") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestDoctorShowsAgentView: doctor prints the agent's own probe verdict next to its own check, so
// a path that differs from the operator's machine shows (here: unreachable from here, fine from
// the agent's cluster).
func TestDoctorShowsAgentView(t *testing.T) {
	addr := remoteClusterServer(t)
	for link, want := range map[string]string{
		"unreachable": "the agent's probe, from its cluster: [ok] HandshakeVerified: TLS handshake verified (1ms)",
		"stale-ca":    "the agent's probe, from its cluster: [fail] CertificateUntrusted: does not verify",
		"healthy":     "the agent's probe, from its cluster: [ok] HandshakeVerified",
	} {
		t.Run(link, func(t *testing.T) {
			_, out, _ := runCtl(t, map[string]*env{"west": doctorWorld(t, addr)}, "doctor", "ns/"+link, "--context", "west", "--dial-timeout", "2s")
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		})
	}
	_, out, _ := runCtl(t, map[string]*env{"west": doctorWorld(t, addr)}, "doctor", "ns/wrong-name", "--context", "west", "--dial-timeout", "2s")
	if strings.Contains(out, "the agent's probe") {
		t.Fatalf("a link the agent did not probe shows a probe:\n%s", out)
	}
}
