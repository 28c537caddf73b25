package peering

import (
	"context"
	"slices"
	"testing"

	"github.com/ecklink/ecklink/internal/backoff"
)

// TestTerminatedDeliveredWhenTheDialerStops: the Peer finalizer stops dialing right after
// Terminate returns; the message must have left by then, or cancelling the stream drops it
// from the transport's queue (it did, in about one run out of six, before Terminate waited for
// the stream to end).
func TestTerminatedDeliveredWhenTheDialerStops(t *testing.T) {
	for range 10 {
		east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
		pair(west, east)
		waitFor(t, "connected", wait, func() bool { return east.connected("west") })
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		if err := west.m.Terminate(ctx, "east", "unpaired"); err != nil {
			t.Fatal(err)
		}
		cancel()
		west.peers.Delete("east")
		waitFor(t, "east told", wait, func() bool {
			return east.h.get(func(h *fakeHandler) bool { return slices.Equal(h.terminated, []string{"west:unpaired"}) })
		})
	}
}
