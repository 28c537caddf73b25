package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindECKBinaries: another ECK version's operator and CRDs are looked up beside the main
// ones, and a missing one is named with the command that builds it.
func TestFindECKBinaries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		wantErr string
	}{
		{"complete", []string{"elastic-operator-3.2", "eck-crds-3.2.yaml"}, ""},
		{"no operator", []string{"eck-crds-3.2.yaml"}, "elastic-operator-3.2 of ECK 3.2 is missing (run `make testbed`)"},
		{"no CRDs", []string{"elastic-operator-3.2"}, "eck-crds-3.2.yaml of ECK 3.2 is missing (run `make testbed`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range append([]string{"kube-apiserver", "etcd", "elastic-operator", "eck-crds.yaml"}, tc.files...) {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("ECKLINK_TESTBED_BIN", dir)
			b, err := FindECKBinaries("3.2")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Binaries{KubeAPIServer: filepath.Join(dir, "kube-apiserver"), Etcd: filepath.Join(dir, "etcd"),
				ECKOperator: filepath.Join(dir, "elastic-operator-3.2"), ECKCRDs: filepath.Join(dir, "eck-crds-3.2.yaml")}
			if b != want {
				t.Fatalf("got %+v, want %+v", b, want)
			}
		})
	}
}
