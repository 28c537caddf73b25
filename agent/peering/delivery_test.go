package peering

import (
	"testing"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestAcknowledged(t *testing.T) {
	hs := newHarness(t, nil)
	trust := func(b string) *peerv1.Trust { return &peerv1.Trust{CaBundle: []byte(b)} }
	if hs.m.Acknowledged("west", resourceTrust) {
		t.Fatal("acknowledged before anything was published")
	}
	if err := hs.m.Publish("west", wrap(resourceTrust, trust("a"))); err != nil {
		t.Fatal(err)
	}
	hs.start()
	hs.open("west", nil)
	u := hs.nextUpdate()
	if hs.m.Acknowledged("west", resourceTrust) {
		t.Fatal("acknowledged before the Ack")
	}
	hs.send(ackMsg(u))
	waitFor(t, "ack recorded", wait, func() bool { return hs.m.Acknowledged("west", resourceTrust) })

	// New content is unacknowledged until its own Ack, and a Nack does not count.
	if err := hs.m.Publish("west", wrap(resourceTrust, trust("b"))); err != nil {
		t.Fatal(err)
	}
	if hs.m.Acknowledged("west", resourceTrust) {
		t.Fatal("new content counted as acknowledged")
	}
	u = hs.nextUpdate()
	hs.send(nackMsg(u, "InvalidCA"))
	if hs.m.Acknowledged("west", resourceTrust) {
		t.Fatal("a Nack counted as acknowledged")
	}
	if err := hs.m.Remove("west", resourceTrust); err != nil {
		t.Fatal(err)
	}
	if hs.m.Acknowledged("west", resourceTrust) {
		t.Fatal("a removed resource counted as acknowledged")
	}
}
