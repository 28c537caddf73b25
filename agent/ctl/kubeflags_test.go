package ctl

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingAPIServer answers every request 404 (so commands fail fast) and records the request
// headers and URLs agentctl sent.
type recordingAPIServer struct {
	mu       sync.Mutex
	requests []*http.Request
}

func (s *recordingAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
}

// writeKubeconfig writes a kubeconfig with contexts east and west, both at server.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: east
  cluster: {server: "` + server + `"}
- name: west
  cluster: {server: "` + server + `"}
users:
- name: admin
  user: {token: not-a-real-token}
contexts:
- name: east
  context: {cluster: east, user: admin}
- name: west
  context: {cluster: west, user: admin}
current-context: east
`
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runReal runs agentctl with its real Kubernetes clients.
func runReal(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(Options{Out: &out, Err: &errb, In: strings.NewReader(""), Now: func() time.Time { return testNow }})
	cmd.SetArgs(args)
	code := Execute(context.Background(), cmd)
	return code, out.String(), errb.String()
}

// TestKubeconfigFlags: kubectl's connection flags reach the API requests: the context's server,
// impersonation headers, the request timeout and the agent namespace.
func TestKubeconfigFlags(t *testing.T) {
	rec := &recordingAPIServer{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	kc := writeKubeconfig(t, srv.URL)
	code, _, errOut := runReal(t, "status", "--kubeconfig", kc, "--context", "west", "-n", "agents",
		"--as", "alice", "--as-group", "ops", "--request-timeout", "7s")
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d (the server answers 404): %s", code, ExitFailed, errOut)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) == 0 {
		t.Fatal("no request reached the API server")
	}
	r := rec.requests[0]
	checks := map[string][2]string{
		"Impersonate-User":  {r.Header.Get("Impersonate-User"), "alice"},
		"Impersonate-Group": {r.Header.Get("Impersonate-Group"), "ops"},
		"timeout":           {r.URL.Query().Get("timeout"), "7s"},
		"path":              {r.URL.Path, "/api/v1/namespaces/agents/configmaps/ecklink-agent-identity"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "agentctl/") {
		t.Errorf("User-Agent %q, want agentctl/<version>", ua)
	}
}

func TestVerbosity(t *testing.T) {
	e := statusWorld(t)
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"status", "--context", "east"}, false},
		{[]string{"status", "--context", "east", "-v", "4"}, true},
	} {
		code, _, errOut := runCtl(t, map[string]*env{"east": e}, tc.args...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		if got := strings.Contains(errOut, "debug: connecting to context east"); got != tc.want {
			t.Errorf("%v: debug line shown %v, want %v:\n%s", tc.args, got, tc.want, errOut)
		}
	}
}

func TestOutputFormats(t *testing.T) {
	tests := []struct {
		output string
		want   []string
		code   int
	}{
		{"name", []string{"peer.ecklink.io/north\npeer.ecklink.io/west\nremotecluster.ecklink.io/north-logs\nremotecluster.ecklink.io/west-logs\nclusterexport.ecklink.io/logs\n"}, ExitOK},
		{"jsonpath={.peers[*].name}", []string{"north west"}, ExitOK},
		{`jsonpath={range .links[*]}{.namespace}/{.name} {.apiKey.id}{"\n"}{end}`, []string{"search/north-logs \nsearch/west-logs k7Q2bW0BAAAAzzzz\n"}, ExitOK},
		{"wide", []string{"ENDPOINTS", "agent.west.example:9400", "PROXY ADDRESS", "logs.west.example:9443", "logs-es-remote-cluster.data.svc", "LAST ACK"}, ExitOK},
		{"jsonpath={.peers[", nil, ExitUsage},
		{"xml", nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			code, out, errOut := runCtl(t, map[string]*env{"east": statusWorld(t)}, "status", "--context", "east", "-o", tt.output)
			if code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("name where nothing is listed", func(t *testing.T) {
		code, _, errOut := runCtl(t, nil, "version", "-o", "name")
		if code != ExitUsage || !strings.Contains(errOut, "lists no objects") {
			t.Errorf("exit %d, stderr %q; want %d", code, errOut, ExitUsage)
		}
	})
}

// TestCompletion runs cobra's hidden __complete command as the shell scripts do.
func TestCompletion(t *testing.T) {
	kc := writeKubeconfig(t, "https://127.0.0.1:1")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"contexts", []string{"__complete", "status", "--kubeconfig", kc, "--context", ""}, []string{"east", "west"}},
		{"peer contexts", []string{"__complete", "pair", "--kubeconfig", kc, "--peer-context", ""}, []string{"east", "west"}},
		{"peers", []string{"__complete", "unpair", "--context", "east", ""}, []string{"north", "west"}},
		{"remote clusters", []string{"__complete", "doctor", "--context", "east", ""}, []string{"search/north-logs", "search/west-logs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCtl(t, map[string]*env{"east": statusWorld(t)}, tt.args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			got := lines[:len(lines)-1] // the last line is the directive, e.g. ":4"
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("completions %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDisplayName(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/local/bin/kubectl-ecklink":        "kubectl ecklink",
		"/usr/local/bin/agentctl":               "agentctl",
		"/tmp/go-build/ctl.test":                "agentctl",
		"/home/me/.krew/bin/kubectl-ecklink-x1": "agentctl",
	} {
		if got := displayName(argv0); got != want {
			t.Errorf("displayName(%q) = %q, want %q", argv0, got, want)
		}
	}
}
