package peering

import (
	"testing"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestPublishAfterOpenContinuesAbovePeer: this agent restarted, and the peer still holds
// status/a@7 from before. A resource published only after the session opened (as the importer
// publishes link statuses once it reconciled) continues above 7, so that the peer applies it
// instead of refusing it as a rollback.
func TestPublishAfterOpenContinuesAbovePeer(t *testing.T) {
	hs := newHarness(t, nil)
	hs.start()
	hs.open("west", map[string]uint64{"status/a": 7})
	if u := hs.nextUpdate(); u.Resource != ResourceInventory {
		t.Fatalf("first update %v, want the inventory", u)
	}
	if err := hs.m.Publish("west", wrap("status/a", &peerv1.LinkStatus{Connected: true})); err != nil {
		t.Fatal(err)
	}
	if err := hs.m.Publish("west", wrap("status/b", &peerv1.LinkStatus{Connected: true})); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for range 2 {
		u := hs.nextUpdate()
		got[u.Resource] = u.Sequence
		hs.send(ackMsg(u))
	}
	if got["status/a"] != 8 || got["status/b"] != 1 {
		t.Fatalf("sequences %v, want status/a@8 (above the peer's 7) and status/b@1", got)
	}
}

// TestPublishSendsOnlyChanges: the halves publish every link's state on every pass. Content the
// peer holds already is not sent again, the Manager keeps its own copy of what it sends (the
// caller may reuse its message), and changed content goes out with the next sequence.
func TestPublishSendsOnlyChanges(t *testing.T) {
	hs := newHarness(t, nil)
	hs.start()
	hs.open("west", nil)
	if u := hs.nextUpdate(); u.Resource != ResourceInventory {
		t.Fatalf("first update %v, want the inventory", u)
	}
	publish := func(u *peerv1.Update) {
		t.Helper()
		if err := hs.m.Publish("west", u); err != nil {
			t.Fatal(err)
		}
	}
	first := &peerv1.LinkStatus{Connected: true}
	publish(wrap("status/a", first))
	if u := hs.nextUpdate(); u.Resource != "status/a" || u.Sequence != 1 || !u.GetLinkStatus().GetConnected() {
		t.Fatalf("got %v, want status/a@1 connected", u)
	}
	publish(wrap("status/a", &peerv1.LinkStatus{Connected: true})) // the same again: nothing to send
	first.Connected = false                                        // the caller reuses its message
	publish(wrap("status/a", &peerv1.LinkStatus{Connected: true})) // still what the peer has
	publish(wrap("status/b", &peerv1.LinkStatus{Connected: true}))
	if u := hs.nextUpdate(); u.Resource != "status/b" || u.Sequence != 1 {
		t.Fatalf("got %v, want status/b@1: status/a did not change", u)
	}
	publish(wrap("status/a", &peerv1.LinkStatus{Connected: false}))
	if u := hs.nextUpdate(); u.Resource != "status/a" || u.Sequence != 2 || u.GetLinkStatus().GetConnected() {
		t.Fatalf("got %v, want status/a@2 not connected", u)
	}
}
