package peering

import (
	"sync/atomic"
	"time"
)

// liveness is what the receive goroutine knows of the peer: when it last heard from it, and
// whether it is waiting on this agent (its queue full while the session loop is busy, for
// instance blocked sending to a peer that reads slowly). Time spent waiting on this agent does
// not count as the peer's silence: only the receive goroutine can tell the two apart, since
// messages queued behind a blocked send prove the peer alive although nobody handled them yet.
type liveness struct {
	heard   atomic.Int64 // unix nanoseconds
	waiting atomic.Bool
}

func newLiveness(now time.Time) *liveness {
	l := &liveness{}
	l.heard.Store(now.UnixNano())
	return l
}

// received records a message from the peer; the receive goroutine then waits to queue it.
func (l *liveness) received(now time.Time) {
	l.heard.Store(now.UnixNano())
	l.waiting.Store(true)
}

// queued records that the message is handed over: from now on the peer's silence counts again.
func (l *liveness) queued(now time.Time) {
	l.heard.Store(now.UnixNano())
	l.waiting.Store(false)
}

// remaining is how much longer the peer may stay silent at now, or 0 when it was silent for
// timeout already.
func (l *liveness) remaining(now time.Time, timeout time.Duration) time.Duration {
	if l.waiting.Load() {
		return timeout
	}
	silent := now.Sub(time.Unix(0, l.heard.Load()))
	return max(timeout-silent, 0)
}
