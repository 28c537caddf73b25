package ctl

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/internal/testenv"
)

// noPeers trusts nobody: the check's handshake carries no client certificate anyway.
type noPeers struct{}

func (noPeers) PeerCAs(string) []*x509.Certificate { return nil }
func (noPeers) Environments() []string             { return nil }

// agentPeerPort serves TLS as an agent's peer port does (its identity, client certificates
// required) and returns the address and the agent CA bundle.
func agentPeerPort(t *testing.T, env string) (string, []byte) {
	t.Helper()
	id, err := identity.New(identity.Config{Environment: env, Namespace: agentNS, Client: fake.NewClientset(), Endpoints: []string{"127.0.0.1:9400"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return testenv.HandshakeServer(t, id.ServerTLSConfig(noPeers{}), nil), id.Bundle()
}

func TestCheck(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not leading yet", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	eastAddr, eastBundle := agentPeerPort(t, "east")
	_, otherBundle := agentPeerPort(t, "east")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	eastCA, otherCA := write("east.crt", eastBundle), write("other.crt", otherBundle)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	tests := []struct {
		name     string
		ready    string
		peer     string
		env      string
		caFile   string
		wantCode int
		want     []string
	}{
		{"ready and own identity", ready.URL, eastAddr, "east", eastCA, ExitOK,
			[]string{"readyz", "ok", `certificate of environment "east", chains to the agent CA bundle`}},
		{"not ready", notReady.URL, eastAddr, "east", eastCA, ExitCheckFailed, []string{"FAILED", "503 Service Unavailable"}},
		{"another environment's port", ready.URL, eastAddr, "west", eastCA, ExitCheckFailed, []string{`certificate names environment "east", want "west"`}},
		{"another agent CA", ready.URL, eastAddr, "east", otherCA, ExitCheckFailed, []string{"does not chain to the agent CA bundle"}},
		{"nothing listens", ready.URL, closedAddr, "east", eastCA, ExitCheckFailed, []string{"peer-port", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCtlNow(t, nil, time.Now, "check", "--ready-url", tt.ready, "--peer-address", tt.peer,
				"--environment", tt.env, "--ca-file", tt.caFile, "--timeout", "1500ms", "--interval", "500ms")
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("bad CA file", func(t *testing.T) {
		code, _, errOut := runCtlNow(t, nil, time.Now, "check", "--ready-url", ready.URL, "--peer-address", eastAddr,
			"--environment", "east", "--ca-file", write("empty.crt", nil))
		if code != ExitUsage || !strings.Contains(errOut, "no PEM certificates") {
			t.Errorf("exit %d, stderr %q; want %d naming the empty bundle", code, errOut, ExitUsage)
		}
	})
}
