package importer

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// BenchmarkResyncPass is the periodic pass over one Elasticsearch whose 100 links are applied and
// unchanged: what an idle agent spends per Elasticsearch and resync interval.
func BenchmarkResyncPass(b *testing.B) {
	const links = 100
	var rcs []*v1alpha1.RemoteCluster
	for i := range links {
		rcs = append(rcs, remoteCluster(fmt.Sprintf("l-%03d", i), v1alpha1.SecurityModelAPIKey))
	}
	f := newFixture(b, rcs...)
	waitCache(b, func() bool { return len(f.im.cfg.Cache.RemoteClustersOf(fxNS, fxES)) == links })
	ca := newTestCA(b, "west-transport")
	for _, rc := range rcs {
		if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials(rc.Spec.Alias, "key-"+rc.Spec.Alias, ca)); err != nil {
			b.Fatal(err)
		}
	}
	key := types.NamespacedName{Namespace: fxNS, Name: fxES}
	for range 3 {
		if _, err := f.im.reconcile(b.Context(), key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.im.reconcile(b.Context(), key); err != nil {
			b.Fatal(err)
		}
	}
}
