package peers

import (
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
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

// sessions names the embedded interface so that its Sessions method is promoted.
type sessions = Sessions

// recheckRecorder records Recheck; any other call panics (nil embedded interface).
type recheckRecorder struct {
	sessions
	rechecked []string
}

func (r *recheckRecorder) Recheck(peer string) { r.rechecked = append(r.rechecked, peer) }

// TestLearntTrustChangedRechecks: a bundle learnt over the stream (peertrust.Store) is a change
// of trust as a change of spec.caBundle is: the live stream is verified again at once, so that a
// CA the peer retired (agentctl rotate identity --retire-old) ends a stream still presenting a
// leaf of it.
func TestLearntTrustChangedRechecks(t *testing.T) {
	rec := &recheckRecorder{}
	c := &Controller{cfg: Config{Sessions: rec}, queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	defer c.queue.ShutDown()
	c.TrustChanged("west")
	if !slices.Equal(rec.rechecked, []string{"west"}) {
		t.Errorf("rechecked %v, want [west]", rec.rechecked)
	}
	if c.queue.Len() != 1 {
		t.Errorf("queued %d, want the Peer's status refreshed", c.queue.Len())
	}
}

// TestStillFinalizing: a stale cached copy of a deleted Peer must not be finalized again once a
// pairing made since created a Peer of the same name (seen in e2e: the second finalize sent
// Terminated on the new peering's first stream and the peer deleted its side).
func TestStillFinalizing(t *testing.T) {
	now := metav1.Now()
	peer := func(uid string, deleting bool, finalizers ...string) *v1alpha1.Peer {
		p := &v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{Namespace: "ecklink", Name: "east", UID: types.UID(uid), Finalizers: finalizers}}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	cached := peer("old", true, v1alpha1.Finalizer)
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "ecklink.io", Resource: "peers"}, "east")
	tests := []struct {
		name string
		live *v1alpha1.Peer
		err  error
		want bool
	}{
		{"the same Peer, being deleted, with the finalizer", peer("old", true, v1alpha1.Finalizer), nil, true},
		{"gone", nil, notFound, false},
		{"a new Peer of the same name", peer("new", false, v1alpha1.Finalizer), nil, false},
		{"a new Peer of the same name, itself being deleted", peer("new", true, v1alpha1.Finalizer), nil, false},
		{"already finalized", peer("old", true), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stillFinalizing(cached, tt.live, tt.err); got != tt.want {
				t.Errorf("stillFinalizing = %v, want %v", got, tt.want)
			}
		})
	}
}
