package importer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
)

// inflight counts the RemoteCluster writes in progress, by kind (finalizer or status), and the
// most that were at once. Each write is held for a while (outside the fake client, which
// serializes its own calls), so writes a pass makes side by side overlap.
type inflight struct {
	mu       sync.Mutex
	now, max map[string]int
	total    map[string]int
}

func (c *inflight) enter(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[kind]++
	c.total[kind]++
	c.max[kind] = max(c.max[kind], c.now[kind])
}

func (c *inflight) leave(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[kind]--
}

type countingDynamic struct {
	dynamic.Interface
	c *inflight
}

func (d countingDynamic) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return countingNamespaceable{d.Interface.Resource(gvr), d.c}
}

type countingNamespaceable struct {
	dynamic.NamespaceableResourceInterface
	c *inflight
}

func (n countingNamespaceable) Namespace(ns string) dynamic.ResourceInterface {
	return countingResource{n.NamespaceableResourceInterface.Namespace(ns), n.c}
}

type countingResource struct {
	dynamic.ResourceInterface
	c *inflight
}

const heldWrite = 20 * time.Millisecond

func (r countingResource) Update(ctx context.Context, obj *unstructured.Unstructured, opts metav1.UpdateOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.c.enter("finalizer")
	defer r.c.leave("finalizer")
	time.Sleep(heldWrite)
	return r.ResourceInterface.Update(ctx, obj, opts, sub...)
}

func (r countingResource) UpdateStatus(ctx context.Context, obj *unstructured.Unstructured, opts metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	r.c.enter("status")
	defer r.c.leave("status")
	time.Sleep(heldWrite)
	return r.ResourceInterface.UpdateStatus(ctx, obj, opts)
}

// TestRemoteClusterWritesRunSideBySide: a pass over many new links adds their finalizers and
// writes their statuses side by side, at most writers at once, and every one of them lands.
// One after the other, a pass over 100 new links spent seconds on each kind before (bench trace).
func TestRemoteClusterWritesRunSideBySide(t *testing.T) {
	const links = 3 * writers
	var rcs []*v1alpha1.RemoteCluster
	for i := range links {
		rc := remoteCluster(fmt.Sprintf("l-%03d", i), v1alpha1.SecurityModelAPIKey)
		rc.Finalizers = nil // new: the pass adds the finalizer
		rcs = append(rcs, rc)
	}
	f := newFixture(t, rcs...)
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersOf(fxNS, fxES)) == links })
	c := &inflight{now: map[string]int{}, max: map[string]int{}, total: map[string]int{}}
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: countingDynamic{f.dyn, c}})
	if err != nil {
		t.Fatal(err)
	}
	f.im.cfg.CRDs = crds
	f.reconcile(t)

	for _, kind := range []string{"finalizer", "status"} {
		if c.total[kind] != links || c.max[kind] < 2 || c.max[kind] > writers {
			t.Errorf("%s writes: %d in all, at most %d at once; want %d, between 2 and %d at once", kind, c.total[kind], c.max[kind], links, writers)
		}
	}
	for _, rc := range rcs {
		got := f.remoteCluster(t, rc.Name)
		if len(got.Finalizers) != 1 || got.Status.ObservedGeneration != got.Generation || len(got.Status.Conditions) == 0 {
			t.Errorf("%s: finalizers %v, status %+v; want the finalizer and a status", rc.Name, got.Finalizers, got.Status)
		}
	}
}
