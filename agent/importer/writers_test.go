package importer

import (
	"fmt"
	"testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/kube"
)

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
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == links })
	c := fakekube.NewInflight()
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: fakekube.Counting(f.Dynamic, c)})
	if err != nil {
		t.Fatal(err)
	}
	f.im.cfg.CRDs = crds
	f.reconcile(t)

	for _, kind := range []string{fakekube.Update, fakekube.Status} { // finalizers, statuses
		if n, most := c.Total(kind), c.Max(kind); n != links || most < 2 || most > writers {
			t.Errorf("%s writes: %d in all, at most %d at once; want %d, between 2 and %d at once", kind, n, most, links, writers)
		}
	}
	for _, rc := range rcs {
		got := f.remoteCluster(t, rc.Name)
		if len(got.Finalizers) != 1 || got.Status.ObservedGeneration != got.Generation || len(got.Status.Conditions) == 0 {
			t.Errorf("%s: finalizers %v, status %+v; want the finalizer and a status", rc.Name, got.Finalizers, got.Status)
		}
	}
}
