package importer

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkResyncPass is the periodic pass over one Elasticsearch whose 100 links are applied and
// unchanged: what an idle agent spends per Elasticsearch and resync interval.
func BenchmarkResyncPass(b *testing.B) {
	f, _ := newAPIKeyLinksFixture(b, 100)
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
