package kube

import (
	"os"
	"path/filepath"
	"testing"
)

const testKubeconfig = `apiVersion: v1
kind: Config
current-context: east
clusters:
- name: east
  cluster: {server: "https://east.example:6443"}
- name: west
  cluster: {server: "https://west.example:6443"}
users:
- name: admin
  user: {token: not-a-secret}
contexts:
- name: east
  context: {cluster: east, user: admin}
- name: west
  context: {cluster: west, user: admin}
`

func TestRESTConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, context, wantHost string
		wantErr                       bool
	}{
		{name: "current context", path: path, wantHost: "https://east.example:6443"},
		{name: "named context", path: path, context: "west", wantHost: "https://west.example:6443"},
		{name: "unknown context", path: path, context: "north", wantErr: true},
		{name: "missing file", path: filepath.Join(t.TempDir(), "none"), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := RESTConfig(tc.path, tc.context)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got host %s", cfg.Host)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost {
				t.Errorf("host = %s, want %s", cfg.Host, tc.wantHost)
			}
		})
	}
}

func TestRESTConfigInCluster(t *testing.T) {
	// In a pod without a service account token mounted, in-cluster loading fails and says so,
	// rather than silently falling back to a kubeconfig.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
		t.Skip("running in a pod")
	}
	if _, err := RESTConfig("", ""); err == nil {
		t.Fatal("want an in-cluster error without a service account token")
	}
}
