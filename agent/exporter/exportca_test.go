package exporter

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestStatusNeedsReconcile(t *testing.T) {
	base := &peerv1.LinkStatus{AppliedApiKeyId: "k1", WrittenApiKeyId: "k1", Connected: true, AppliedCaFingerprints: []string{"a"}}
	with := func(f func(*peerv1.LinkStatus)) *peerv1.LinkStatus {
		s := &peerv1.LinkStatus{AppliedApiKeyId: "k1", WrittenApiKeyId: "k1", Connected: true, AppliedCaFingerprints: []string{"a"}}
		f(s)
		return s
	}
	for _, tc := range []struct {
		name string
		prev *peerv1.LinkStatus
		next *peerv1.LinkStatus
		want bool
	}{
		{name: "first status", prev: nil, next: base, want: true},
		{name: "CA echo only", prev: base, next: with(func(s *peerv1.LinkStatus) { s.AppliedCaFingerprints = []string{"b", "a"} }), want: false},
		{name: "new key in effect", prev: base, next: with(func(s *peerv1.LinkStatus) { s.AppliedApiKeyId = "k2" }), want: true},
		{name: "new key written", prev: base, next: with(func(s *peerv1.LinkStatus) { s.WrittenApiKeyId = "k2" }), want: true},
		{name: "disconnected", prev: base, next: with(func(s *peerv1.LinkStatus) { s.Connected = false; s.Message = "not connected" }), want: true},
		{name: "signs now", prev: base, next: with(func(s *peerv1.LinkStatus) { s.SigningSubject = "CN=x" }), want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusNeedsReconcile(tc.prev, tc.next); got != tc.want {
				t.Fatalf("statusNeedsReconcile = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGateRunsOneItemPerElasticsearch(t *testing.T) {
	var g gate
	a := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "c"}}
	b := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "d"}}
	if !g.enter("es/data/logs", a) {
		t.Fatal("the first item must enter")
	}
	if !g.enter("es/data/other", b) {
		t.Fatal("an item of another Elasticsearch must enter")
	}
	for range 2 { // parked twice, returned once
		if g.enter("es/data/logs", b) {
			t.Fatal("a second item of a busy Elasticsearch must be parked")
		}
	}
	parked := g.leave("es/data/logs")
	if len(parked) != 1 || parked[0] != b {
		t.Fatalf("leave returned %v, want the parked item once", parked)
	}
	if !g.enter("es/data/logs", b) {
		t.Fatal("a free Elasticsearch must take the next item")
	}
}

// TestGateReturnsParkedItemsInOrder: the items parked under a busy Elasticsearch come back in
// the order they came (a second parking keeps the first place), so none waits behind the
// others' later passes round after round.
func TestGateReturnsParkedItemsInOrder(t *testing.T) {
	var g gate
	items := make([]item, 50)
	for i := range items {
		items[i] = item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: fmt.Sprintf("l%02d", i)}}
	}
	running := item{kind: "export", ns: "data", name: "logs"}
	if !g.enter("es/data/logs", running) {
		t.Fatal("the first item must enter")
	}
	for _, it := range items {
		g.enter("es/data/logs", it)
	}
	g.enter("es/data/logs", items[0]) // queued again by a resync: keeps its place
	if got := g.leave("es/data/logs"); !slices.Equal(got, items) {
		t.Fatalf("leave returned %d items, want the %d parked, in the order they came", len(got), len(items))
	}
}
