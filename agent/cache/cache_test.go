package cache

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// TestHasPeer: HasPeer answers as Peer does (a Peer that does not convert is not there) and
// hands out nothing, so it copies nothing.
func TestHasPeer(t *testing.T) {
	c, err := New(Config{Kube: kubefake.NewClientset(), Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), AgentNamespace: "ecklink"})
	if err != nil {
		t.Fatal(err)
	}
	peer := func(name string, spec any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "ecklink.io/v1alpha1", "kind": "Peer",
			"metadata": map[string]any{"namespace": "ecklink", "name": name, "resourceVersion": "1"}, "spec": spec}}
	}
	for _, p := range []*unstructured.Unstructured{peer("west", map[string]any{}), peer("broken", "not an object")} {
		if err := c.peers.GetIndexer().Add(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		environment string
		want        bool
	}{{"west", true}, {"broken", false}, {"north", false}} {
		_, viaPeer := c.Peer(tc.environment)
		if got := c.HasPeer(tc.environment); got != tc.want || viaPeer != tc.want {
			t.Errorf("HasPeer(%q) = %v, Peer ok = %v; want %v", tc.environment, got, viaPeer, tc.want)
		}
	}
}

// TestHandlers: Both calls with both objects of every change, SpecChanges only for changes
// beyond the status, and Key names an object (not a missing one).
func TestHandlers(t *testing.T) {
	rc := func(generation int64) *unstructured.Unstructured {
		u := remoteCluster("a", "u1", "1", "one")
		u.SetGeneration(generation)
		return u
	}
	var got []string
	record := func(o any) {
		if key, ok := Key(o); ok {
			got = append(got, key.String())
		} else {
			got = append(got, "-")
		}
	}
	for _, tc := range []struct {
		name     string
		h        Handler
		old, new any
		want     string
	}{
		{"both, status only", Both(record), rc(1), rc(1), "ns/a ns/a"},
		{"both, add", Both(record), nil, rc(1), "- ns/a"},
		{"spec changes, status only", SpecChanges(record), rc(1), rc(1), ""},
		{"spec changes, generation", SpecChanges(record), rc(1), rc(2), "ns/a ns/a"},
		{"spec changes, delete", SpecChanges(record), rc(1), nil, "ns/a -"},
	} {
		got = nil
		tc.h(tc.old, tc.new)
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s: called with %q, want %q", tc.name, s, tc.want)
		}
	}
}

// TestSecretOf: an ECK Secret handler gets the Secret as it is after a change, the last one seen
// on delete, and nothing for an object that is no Secret.
func TestSecretOf(t *testing.T) {
	secret := func(rv string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "es-es-transport-certs-public", ResourceVersion: rv}}
	}
	for _, tc := range []struct {
		name     string
		old, new any
		want     string
	}{
		{"add", nil, secret("1"), "1"},
		{"update", secret("1"), secret("2"), "2"},
		{"delete", secret("2"), nil, "2"},
		{"not a Secret", nil, remoteCluster("a", "u1", "1", "one"), ""},
	} {
		var got []string
		secretOf(func(s *corev1.Secret) { got = append(got, s.ResourceVersion) })(tc.old, tc.new)
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s: called with %q, want %q", tc.name, s, tc.want)
		}
	}
}
