package importer

import (
	"testing"
	"time"
)

// TestCAMergerMergesEachPairOnce: the links of one exported Elasticsearch hold the same CAs and
// receive the same bundle; the merger merges that pair once and answers the others from it
// without allocating (a pass merges 100 aliases per Elasticsearch every resync).
func TestCAMergerMergesEachPairOnce(t *testing.T) {
	held, incoming := string(newTestCA(t, "west-1")), newTestCA(t, "west-2")
	m := newCAMerger(time.Now())
	first, err := m.merge(held, incoming)
	if err != nil {
		t.Fatal(err)
	}
	if got := bundleNames(t, first); got != "west-2,west-1" {
		t.Fatalf("merged = %s; want the new CA first, then the one held", got)
	}
	allocs := testing.AllocsPerRun(100, func() {
		again, err := m.merge(held, incoming)
		if err != nil || again != first {
			t.Fatalf("merge again = %q, %v; want the first merge's bundle", again, err)
		}
	})
	if allocs != 0 {
		t.Errorf("merging a pair merged already allocated %.0f times; want none", allocs)
	}
	if _, err := m.merge(held, []byte("not a bundle")); err == nil {
		t.Error("merging an unreadable bundle succeeded")
	}
}
