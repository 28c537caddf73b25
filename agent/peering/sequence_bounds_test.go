package peering

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestSequencesCannotWrap: a sequence is refused at or above 2^63, in updates and in Open's
// applied map, and every increment is checked, so that a peer announcing applied = 2^64-1
// cannot make the next sequence wrap to 0 (below everything applied, freezing the resource).
func TestSequencesCannotWrap(t *testing.T) {
	t.Run("updates at or above 2^63 refused with a named reason", func(t *testing.T) {
		hs := newHarness(t, nil)
		hs.start()
		hs.open("west", nil)
		if inv := hs.nextUpdate(); inv.GetInventory() == nil {
			t.Fatalf("want the inventory first, got %v", inv)
		}
		for _, tc := range []struct {
			seq  uint64
			want string // Nack reason, "" for an Ack
		}{{1 << 63, ReasonSequenceTooLarge}, {1<<64 - 1, ReasonSequenceTooLarge}, {MaxSequence, ""}, {MaxSequence, ""}} {
			hs.send(trustUpdate("trust", tc.seq, fmt.Sprint("n", tc.seq), "A"))
			got := hs.next()
			switch {
			case tc.want == "" && got.GetAck() == nil:
				t.Fatalf("sequence %d: got %v, want an Ack", tc.seq, got)
			case tc.want != "" && (got.GetNack().GetReason() != tc.want || !strings.Contains(got.GetNack().GetMessage(), "the highest allowed")):
				t.Fatalf("sequence %d: got %v, want Nack %s", tc.seq, got, tc.want)
			}
		}
		if n := hs.h.updateCount(); n != 1 {
			t.Fatalf("handler applied %d updates, want 1", n)
		}
	})

	for _, tc := range []struct {
		name    string
		applied uint64
		wantErr string
	}{
		{"Open announcing applied 2^64-1 for the trust bundle is refused", 1<<64 - 1, "above the highest allowed"},
		{"Open announcing applied 2^63 is refused", 1 << 63, "above the highest allowed"},
		{"Open announcing MaxSequence for a held resource is refused", MaxSequence, "no sequence is left above it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			if err := hs.m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T1")})); err != nil {
				t.Fatal(err)
			}
			hs.start()
			hs.open("west", map[string]uint64{"trust": tc.applied})
			err := hs.wait()
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"trust"`) {
				t.Fatalf("serve() = %v, want a protocol error naming trust: %s", err, tc.wantErr)
			}
			// The trust bundle is not frozen: an honest session afterwards delivers it.
			hs.start()
			hs.open("west", map[string]uint64{"trust": 3})
			if u := hs.nextUpdate(); u.Resource != "trust" || u.Sequence != 4 {
				t.Fatalf("after the refused Open: %v, want trust@4", u)
			}
		})
	}

	t.Run("the last sequence is used, then publishing fails instead of wrapping", func(t *testing.T) {
		hs := newHarness(t, nil)
		if err := hs.m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T1")})); err != nil {
			t.Fatal(err)
		}
		hs.start()
		hs.open("west", map[string]uint64{"trust": MaxSequence - 1, "status/new": MaxSequence})
		u := hs.nextUpdate()
		if u.Resource != "trust" || u.Sequence != MaxSequence {
			t.Fatalf("got %v, want trust@%d", u, uint64(MaxSequence))
		}
		hs.send(ackMsg(u))
		err := hs.m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T2")}))
		if err == nil || !errors.Is(err, errSequenceExhausted) {
			t.Fatalf("Publish past MaxSequence = %v, want %v", err, errSequenceExhausted)
		}
		// A resource first published after an Open that announced MaxSequence for it.
		if err := hs.m.Publish("west", wrap("status/new", &peerv1.LinkStatus{})); !errors.Is(err, errSequenceExhausted) {
			t.Fatalf("Publish of status/new = %v, want %v", err, errSequenceExhausted)
		}
		if err := hs.m.Remove("west", "trust"); !errors.Is(err, errSequenceExhausted) {
			t.Fatalf("Remove = %v, want %v", err, errSequenceExhausted)
		}
	})

	t.Run("an applied sequence above MaxSequence persisted by an older version is not announced", func(t *testing.T) {
		ps := newPeerState("west")
		out := ps.seedReceived(map[string]uint64{"trust": 1<<64 - 1, "credentials/ns/es/a": 7})
		if _, ok := out["trust"]; ok || out["credentials/ns/es/a"] != 6 || len(ps.received) != 1 {
			t.Fatalf("announced %v with records %v, want only credentials/ns/es/a", out, ps.received)
		}
	})

	t.Run("nextSequence is checked", func(t *testing.T) {
		for _, tc := range []struct {
			in   uint64
			want uint64
			ok   bool
		}{{0, 1, true}, {41, 42, true}, {MaxSequence - 1, MaxSequence, true}, {MaxSequence, 0, false}, {1<<64 - 1, 0, false}} {
			got, err := nextSequence(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("nextSequence(%d) = %d, %v", tc.in, got, err)
			}
		}
	})
}

// TestReceiverRecordsBounded: records follow what the peer holds: a removal leaves none, and an
// inventory (up to MaxUpdateBytes of keys from the peer) keeps only listed records, in one pass.
func TestReceiverRecordsBounded(t *testing.T) {
	ps := newPeerState("west")
	for i := range 1000 {
		ps.recordReceived(fmt.Sprintf("status/ns/es/a%d", i), record{seq: 1})
	}
	keep := make([]string, 0, 1_000_000)
	for i := range 1_000_000 {
		keep = append(keep, fmt.Sprintf("status/ns/es/x%d", i))
	}
	keep = append(keep, "status/ns/es/a7", "status/ns/es/a999")
	ps.keepReceived(keep)
	if len(ps.received) != 2 {
		t.Fatalf("%d records kept, want the 2 listed", len(ps.received))
	}

	big := newHarness(t, nil)
	big.start()
	applied := make(map[string]uint64, maxApplied+1)
	for i := range maxApplied + 1 {
		applied[fmt.Sprintf("status/ns/es/a%d", i)] = 1
	}
	big.open("west", applied)
	if err := big.wait(); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "applied resources, at most") {
		t.Fatalf("Open with %d applied entries: %v, want a protocol error", len(applied), err)
	}

	hs := newHarness(t, nil)
	hs.start()
	hs.open("west", nil)
	hs.nextUpdate() // inventory
	for i := range 50 {
		hs.send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: &peerv1.Update{
			Resource: fmt.Sprintf("import/ns/es/r%d", i), Sequence: 1, Nonce: fmt.Sprint("n", i),
			Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}},
		}}})
		if hs.next().GetAck() == nil {
			t.Fatal("removal not acknowledged")
		}
	}
	ps = hs.m.peer("west")
	ps.mu.Lock()
	n := len(ps.received)
	ps.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d receiver records after 50 removals, want 0", n)
	}
}
