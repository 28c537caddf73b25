package peers

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func peerObject(env, bundle string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": env},
		"spec":     map[string]any{"environment": env, "caBundle": bundle},
	}}
}

// TestTrustChanged: which Peer events make the live stream's certificate be checked again.
func TestTrustChanged(t *testing.T) {
	tests := []struct {
		name     string
		old, new any
		wantEnv  string
		want     bool
	}{
		{name: "added: no stream to check yet", new: peerObject("west", "A")},
		{name: "status or endpoints changed, same CAs", old: peerObject("west", "A"), new: peerObject("west", "A")},
		{name: "CA bundle changed", old: peerObject("west", "A"), new: peerObject("west", "B"), wantEnv: "west", want: true},
		{name: "deleted", old: peerObject("west", "A"), wantEnv: "west", want: true},
		{name: "not a Peer", old: "junk", new: "junk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, ok := trustChanged(tt.old, tt.new)
			if ok != tt.want || (ok && env != tt.wantEnv) {
				t.Fatalf("trustChanged() = %q %v, want %q %v", env, ok, tt.wantEnv, tt.want)
			}
		})
	}
}
