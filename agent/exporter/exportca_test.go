package exporter

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ecklink/ecklink/agent/elastic"
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
	c := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "e"}}
	if ok, _ := g.enter("es/data/logs", a); !ok {
		t.Fatal("the first item must enter")
	}
	if ok, _ := g.enter("es/data/other", b); !ok {
		t.Fatal("an item of another Elasticsearch must enter")
	}
	for range 2 { // parked twice, handed once
		if ok, _ := g.enter("es/data/logs", b); ok {
			t.Fatal("a second item of a busy Elasticsearch must be parked")
		}
	}
	if next := g.leave("es/data/logs"); len(next) != 1 || next[0] != b {
		t.Fatalf("leave handed the key to %v, want the parked item", next)
	}
	if ok, _ := g.enter("es/data/logs", c); ok {
		t.Fatal("an item queued later took the key handed to the parked one")
	}
	if ok, _ := g.enter("es/data/logs", b); !ok {
		t.Fatal("the item the key was handed to must enter")
	}
	if next := g.leave("es/data/logs"); len(next) != 1 || next[0] != c {
		t.Fatalf("leave handed the key to %v, want the next parked item", next)
	}
	if ok, _ := g.enter("es/data/logs", c); !ok {
		t.Fatal("the next item must enter")
	}
	if next := g.leave("es/data/logs"); len(next) != 0 {
		t.Fatalf("leave handed the key to %v with nothing parked", next)
	}
	if ok, _ := g.enter("es/data/logs", a); !ok {
		t.Fatal("a free Elasticsearch must take the next item")
	}
}

// TestGateHandsTheKeyInOrder: the items parked under a busy Elasticsearch run in the order they
// came (a second parking keeps the first place), whatever order the queue brings them back in
// (a resync queues every link again, in a map's order), so none waits round after round.
func TestGateHandsTheKeyInOrder(t *testing.T) {
	var g gate
	items := make([]item, 50)
	for i := range items {
		items[i] = item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: fmt.Sprintf("l%02d", i)}}
	}
	const key = "es/data/logs"
	if ok, _ := g.enter(key, item{kind: "export", ns: "data", name: "logs"}); !ok {
		t.Fatal("the first item must enter")
	}
	for _, it := range items {
		g.enter(key, it)
	}
	g.enter(key, items[0]) // queued again by a resync: keeps its place
	var ran []item
	for range items {
		next := g.leave(key)
		if len(next) != 1 {
			t.Fatalf("leave handed the key to %v, want one item", next)
		}
		// The queue brings every parked item back before the one handed the key: all but it park again.
		for i := len(items) - 1; i >= 0; i-- {
			if ok, _ := g.enter(key, items[i]); ok && items[i] != next[0] {
				t.Fatalf("%v entered although the key was handed to %v", items[i], next[0])
			}
		}
		ran = append(ran, next[0])
	}
	if !slices.Equal(ran, items) {
		t.Fatalf("the items ran in another order than they came")
	}
}

// TestGateKeyOfAnItemThatChanged: an item handed a key it no longer needs (its link went, so it
// runs ungated or under another key) passes the key on to the next parked item.
func TestGateKeyOfAnItemThatChanged(t *testing.T) {
	var g gate
	a := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "a"}}
	b := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "b"}}
	c := item{kind: "link", peer: "east", link: link.ID{Namespace: "a", Elasticsearch: "b", Alias: "c"}}
	g.enter("es/data/logs", a)
	g.enter("es/data/logs", b)
	g.enter("es/data/logs", c)
	if next := g.leave("es/data/logs"); len(next) != 1 || next[0] != b {
		t.Fatalf("leave handed the key to %v, want b", next)
	}
	ok, next := g.enter("", b) // b's link is gone: no gate
	if !ok || len(next) != 1 || next[0] != c {
		t.Fatalf("enter(b, ungated) = %v, %v: want it to run and hand the key on to c", ok, next)
	}
	if ok, _ := g.enter("es/data/logs", c); !ok {
		t.Fatal("c was handed the key and must enter")
	}
	if next := g.leave("es/data/logs"); len(next) != 0 {
		t.Fatalf("leave handed the key to %v with nothing parked", next)
	}
}

// TestGateKey: which Elasticsearch an item waits for. A link's items share their exported
// Elasticsearch's key once its target is known, or once its request names an export the cache
// holds (else the export's own key); an export's items share its Elasticsearch's; the CA items
// and links nobody holds pass free; the sweep has its own.
func TestGateKey(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	other := link.ID{Namespace: "ns", Elasticsearch: "es", Alias: "b"}
	req := func(export string) *peerv1.ImportRequest {
		return &peerv1.ImportRequest{Link: other.Proto(), ExportNamespace: axNS, ExportName: export}
	}
	esKey := "es/" + axNS + "/" + axES
	tests := []struct {
		name string
		st   *linkState // the link's state; nil: none
		it   item
		want string
	}{
		{"link without state", nil, item{kind: "link", peer: "east", link: other}, ""},
		{"link with its target", &linkState{target: &elastic.Target{Namespace: "x", Name: "y"}}, item{kind: "link", peer: "east", link: other}, "es/x/y"},
		{"link whose request names a cached export", &linkState{req: req(axExport)}, item{kind: "link", peer: "east", link: other}, esKey},
		{"link whose request names an unknown export", &linkState{req: req("nope")}, item{kind: "link", peer: "east", link: other}, "export/" + axNS + "/nope"},
		{"link with neither", &linkState{}, item{kind: "link", peer: "east", link: other}, ""},
		{"cached export", nil, item{kind: "export", ns: axNS, name: axExport}, esKey},
		{"unknown export", nil, item{kind: "export", ns: axNS, name: "nope"}, "export/" + axNS + "/nope"},
		{"sweep", nil, item{kind: "gc"}, "gc"},
		{"CA item", nil, item{kind: "ca", ns: axNS, name: axES}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.e.mu.Lock()
			f.e.links = map[string]map[link.ID]*linkState{}
			if tc.st != nil {
				f.e.links["east"] = map[link.ID]*linkState{other: tc.st}
			}
			f.e.mu.Unlock()
			if got := f.e.gateKey(tc.it); got != tc.want {
				t.Errorf("gateKey = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestProcessGated: a link's pass waits while another item holds its Elasticsearch's gate
// (parked, nothing answered), is handed the gate when that item leaves, and then answers; its
// leaving frees the gate.
func TestProcessGated(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	if err := f.e.OnImport("east", &peerv1.ImportRequest{Link: axLink.Proto(), ExportNamespace: axNS, ExportName: axExport, ElasticsearchVersion: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	for f.e.queue.Len() > 0 { // what the import queued; the test runs the passes itself
		it, _ := f.e.queue.Get()
		f.e.queue.Done(it)
	}
	it := item{kind: "link", peer: "east", link: axLink}
	key := f.e.gateKey(it)
	holder := item{kind: "export", ns: axNS, name: axExport}
	if ok, _ := f.e.gate.enter(key, holder); !ok || key == "" {
		t.Fatalf("the export could not take the gate %q", key)
	}
	f.e.processGated(t.Context(), it)
	if c := f.credentials("east", axLink); c != nil {
		t.Fatalf("the link answered while its Elasticsearch's gate was held: %v", c)
	}
	next := f.e.gate.leave(key)
	if len(next) != 1 || next[0] != it {
		t.Fatalf("the gate went to %v, want the parked link", next)
	}
	f.e.processGated(t.Context(), it)
	if c := f.credentials("east", axLink); c.GetApiKeyId() == "" {
		t.Fatalf("the link did not answer once handed the gate: %v", c)
	}
	if ok, _ := f.e.gate.enter(key, holder); !ok {
		t.Error("the gate stays taken after the link's pass")
	}
}

// TestEnqueueAll: the resync queues every link the exporter holds and every export, noted as
// the resync.
func TestEnqueueAll(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	f.e.mu.Lock()
	f.e.links = map[string]map[link.ID]*linkState{}
	for i := range 3 {
		peer := []string{"east", "north"}[i%2]
		if f.e.links[peer] == nil {
			f.e.links[peer] = map[link.ID]*linkState{}
		}
		f.e.links[peer][testLink(i)] = &linkState{}
	}
	f.e.mu.Unlock()
	for f.e.queue.Len() > 0 {
		it, _ := f.e.queue.Get()
		f.e.queue.Done(it)
	}
	f.e.enqueueAll()
	kinds := map[string]int{}
	for f.e.queue.Len() > 0 {
		it, _ := f.e.queue.Get()
		kinds[it.kind]++
		if why := f.e.trig.Take(it); !slices.Contains(strings.Split(why, ","), trigResync) {
			t.Errorf("%v queued for %q, want %q among the reasons", it, why, trigResync)
		}
		f.e.queue.Done(it)
	}
	if kinds["link"] != 3 || kinds["export"] != 1 {
		t.Errorf("queued %v, want the 3 links and the export", kinds)
	}
}
