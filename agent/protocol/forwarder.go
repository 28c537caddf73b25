package protocol

import (
	"context"
	"sync/atomic"

	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Forwarder is the peering.Handler a Manager is built with before its Router exists (see the
// package doc): it forwards every call to the Router given to Set.
type Forwarder struct{ r atomic.Pointer[Router] }

var _ peering.Handler = (*Forwarder)(nil)

// Set gives the Forwarder its Router, once, before any stream runs.
func (f *Forwarder) Set(r *Router) {
	if r == nil || !f.r.CompareAndSwap(nil, r) {
		panic("protocol: Forwarder.Set called twice or with nil")
	}
}

func (f *Forwarder) router() *Router {
	r := f.r.Load()
	if r == nil {
		panic("protocol: the stream ran before Forwarder.Set")
	}
	return r
}

// AppliedSequences forwards to Router.AppliedSequences.
func (f *Forwarder) AppliedSequences(peer string) map[string]uint64 {
	return f.router().AppliedSequences(peer)
}

// HandleUpdate forwards to Router.HandleUpdate.
func (f *Forwarder) HandleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	return f.router().HandleUpdate(ctx, peer, u)
}

// HandleInventory forwards to Router.HandleInventory.
func (f *Forwarder) HandleInventory(ctx context.Context, peer string, resources []string) error {
	return f.router().HandleInventory(ctx, peer, resources)
}

// HandleTerminated forwards to Router.HandleTerminated.
func (f *Forwarder) HandleTerminated(peer, reason string) { f.router().HandleTerminated(peer, reason) }

// OnAck forwards to Router.OnAck.
func (f *Forwarder) OnAck(peer, resource string, seq uint64) { f.router().OnAck(peer, resource, seq) }

// OnNack forwards to Router.OnNack.
func (f *Forwarder) OnNack(peer, resource string, seq uint64, reason, message string) {
	f.router().OnNack(peer, resource, seq, reason, message)
}

// OnConnected forwards to Router.OnConnected.
func (f *Forwarder) OnConnected(info peering.SessionInfo) { f.router().OnConnected(info) }

// OnDisconnected forwards to Router.OnDisconnected.
func (f *Forwarder) OnDisconnected(peer string, err error) { f.router().OnDisconnected(peer, err) }
