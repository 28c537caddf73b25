package peering

import (
	"context"
	"sync"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// queued is a received message waiting for the session loop, with the bytes it holds.
type queued struct {
	msg  *peerv1.Message
	size int
}

// byteBudget bounds the bytes of received messages waiting for the session loop. The receive
// goroutine acquires a message's size before queueing it and the loop releases it once handled,
// so a peer that floods large messages while the loop is busy (or blocked sending to that same
// peer, which does not read) waits in gRPC flow control instead of filling this agent's memory:
// the queue holds at most max bytes, whatever the number of messages. A message larger than max
// takes the whole budget, so it still passes alone.
type byteBudget struct {
	max int

	mu   sync.Mutex
	free int
	wake chan struct{} // closed and replaced on release
}

func newByteBudget(max int) *byteBudget {
	return &byteBudget{max: max, free: max, wake: make(chan struct{})}
}

// acquire waits until n bytes (at most max) are free and takes them.
func (b *byteBudget) acquire(ctx context.Context, n int) error {
	n = min(n, b.max)
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives back n bytes (at most max).
func (b *byteBudget) release(n int) {
	n = min(n, b.max)
	b.mu.Lock()
	b.free += n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}
