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
