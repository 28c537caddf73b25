package peering

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// entry is the outbox state of one resource published to a peer.
type entry struct {
	update  *peerv1.Update // resource and payload; sequence and nonce are set per send
	hash    [32]byte
	seq     uint64
	removed bool
	// delivered is the highest sequence the peer is known to have applied.
	delivered uint64
	// sent is the sequence sent in the current session, 0 if none.
	sent uint64
}

// flight is an update sent and not yet answered.
type flight struct {
	resource  string
	seq       uint64
	inventory bool
}

// record is what the receiver last applied of one resource from the peer. The hash is unknown
// when the record was seeded from Handler.AppliedSequences.
type record struct {
	seq   uint64
	hash  [32]byte
	known bool
}

type ackEvent struct {
	resource string
	seq      uint64
}

// peerState is everything the Manager holds for one peer. Methods taking a session act only if
// that session is the current one, so a session being replaced cannot disturb its successor.
type peerState struct {
	name string
	kick chan struct{}

	mu       sync.Mutex
	entries  map[string]*entry
	synced   bool // an Open from this peer was seen since this process started
	queue    []string
	queued   map[string]bool
	inflight map[string]flight
	received map[string]record
	// peerApplied is what the peer announced it applied in its last Open: an entry created
	// after that Open starts above it too, not at 1 (this process may have restarted).
	peerApplied map[string]uint64
	session     *session
	info        SessionInfo
	health      streamHealth

	termReason string
	termSent   chan struct{} // closed once Terminated was sent; nil until requested
	termClosed bool
	terminated bool
}

func newPeerState(name string) *peerState {
	return &peerState{
		name:     name,
		kick:     make(chan struct{}, 1),
		entries:  map[string]*entry{},
		queued:   map[string]bool{},
		inflight: map[string]flight{},
		received: map[string]record{},
		info:     SessionInfo{Peer: name},
	}
}

func hashUpdate(u *peerv1.Update) [32]byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&peerv1.Update{Payload: u.Payload})
	return sha256.Sum256(b)
}

func (ps *peerState) poke() {
	select {
	case ps.kick <- struct{}{}:
	default:
	}
}

// set stores new content for u.Resource, or a removal. It fails, changing nothing, when the
// resource has no sequence left (the peer announced it applied MaxSequence).
func (ps *peerState) set(u *peerv1.Update, removal bool) error {
	return ps.setHashed(u, hashUpdate(u), removal)
}

// holds reports whether resource holds the content hashed h already (set would change nothing).
func (ps *peerState) holds(resource string, h [32]byte) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.entries[resource].holds(h)
}

// holds reports whether e is content hashed h (not a removal); false for no entry.
func (e *entry) holds(h [32]byte) bool { return e != nil && !e.removed && e.hash == h }

// setHashed is set with u's hash (hashUpdate) computed already.
func (ps *peerState) setHashed(u *peerv1.Update, h [32]byte, removal bool) error {
	ps.mu.Lock()
	e := ps.entries[u.Resource]
	seq := uint64(0)
	switch {
	case removal && (e == nil || e.removed):
		ps.mu.Unlock()
		return nil
	case !removal && e.holds(h):
		ps.mu.Unlock()
		return nil
	case e == nil:
		seq = ps.peerApplied[u.Resource]
	default:
		seq = e.seq
	}
	next, err := nextSequence(seq)
	if err != nil {
		ps.mu.Unlock()
		return fmt.Errorf("resource %s: %w", u.Resource, err)
	}
	if e == nil {
		e = &entry{}
		ps.entries[u.Resource] = e
	}
	e.seq = next
	e.update, e.hash, e.removed = u, h, removal
	ps.enqueueLocked(u.Resource)
	ps.mu.Unlock()
	ps.poke()
	return nil
}

func (ps *peerState) enqueueLocked(resource string) {
	if !ps.queued[resource] {
		ps.queued[resource] = true
		ps.queue = append(ps.queue, resource)
	}
}

// open prepares the outbox for a session whose peer announced applied: sequences are rebased
// above applied the first time (this process may have restarted and counted from 1 again),
// everything the peer lacks is queued, and updates the peer applied without our seeing the Ack
// are reported as acknowledged. applied was checked by checkApplied: every value is at most
// MaxSequence, so the rebase below cannot wrap.
func (ps *peerState) open(s *session, applied map[string]uint64) []ackEvent {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return nil
	}
	var acks []ackEvent
	ps.queue, ps.queued, ps.inflight = nil, map[string]bool{}, map[string]flight{}
	keys := make([]string, 0, len(ps.entries))
	for r := range ps.entries {
		keys = append(keys, r)
	}
	slices.Sort(keys)
	for _, r := range keys {
		e, a := ps.entries[r], applied[r]
		e.sent = 0
		switch {
		case !ps.synced && e.seq <= a, ps.synced && e.seq < a:
			// checkApplied refused a = MaxSequence for a resource held here.
			e.seq, _ = nextSequence(a)
		case e.seq == a && e.delivered < a:
			acks = append(acks, ackEvent{resource: r, seq: a})
		}
		e.delivered = min(a, e.seq)
		if e.seq > e.delivered {
			ps.enqueueLocked(r)
		}
	}
	ps.synced = true
	ps.peerApplied = maps.Clone(applied)
	ps.noteOpenedLocked(time.Now())
	return acks
}

// next returns the next update to send, with nonce, or nil.
func (ps *peerState) next(s *session, nonce func() string) *peerv1.Update {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return nil
	}
	for len(ps.queue) > 0 {
		r := ps.queue[0]
		ps.queue = ps.queue[1:]
		delete(ps.queued, r)
		e := ps.entries[r]
		if e == nil || e.seq <= e.delivered || e.sent == e.seq {
			continue
		}
		e.sent = e.seq
		n := nonce()
		ps.inflight[n] = flight{resource: r, seq: e.seq}
		return &peerv1.Update{Resource: r, Sequence: e.seq, Nonce: n, Payload: e.update.Payload}
	}
	return nil
}

// inventory returns the Inventory update listing every resource held for the peer.
func (ps *peerState) inventory(s *session, nonce func() string) *peerv1.Update {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return nil
	}
	var keys []string
	for r, e := range ps.entries {
		if !e.removed {
			keys = append(keys, r)
		}
	}
	slices.Sort(keys)
	n := nonce()
	ps.inflight[n] = flight{resource: ResourceInventory, inventory: true}
	return &peerv1.Update{Resource: ResourceInventory, Nonce: n, Payload: &peerv1.Update_Inventory{Inventory: &peerv1.Inventory{Resources: keys}}}
}

// pending reports whether updates are queued, and how many are in flight.
func (ps *peerState) pending() (queued bool, inflight int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.queue) > 0, len(ps.inflight)
}

// answer resolves the flight of nonce. ok is false for unknown nonces and inventories.
func (ps *peerState) answer(s *session, nonce string, applied bool) (f flight, ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return flight{}, false
	}
	f, ok = ps.inflight[nonce]
	delete(ps.inflight, nonce)
	if !ok || f.inventory {
		return f, false
	}
	if e := ps.entries[f.resource]; e != nil && applied && f.seq > e.delivered {
		e.delivered = f.seq
	}
	return f, true
}

// resend queues resources again (after a RateLimited Nack) if their sequence is still current.
func (ps *peerState) resend(s *session, fl []flight) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return
	}
	for _, f := range fl {
		if e := ps.entries[f.resource]; e != nil && e.sent == f.seq {
			e.sent = 0
			ps.enqueueLocked(f.resource)
		}
	}
}

// seedReceived merges the application's applied sequences into the receiver records and
// returns the map to announce in Open.
func (ps *peerState) seedReceived(applied map[string]uint64) map[string]uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for r, seq := range applied {
		if seq > MaxSequence {
			// Persisted by a version that accepted any sequence: announcing it would have the
			// peer refuse the Open, and keeping it would refuse every later update as a
			// rollback. The peer sends the resource again instead.
			delete(ps.received, r)
			continue
		}
		if rec, ok := ps.received[r]; !ok || rec.seq != seq {
			ps.received[r] = record{seq: seq}
		}
	}
	out := make(map[string]uint64, len(ps.received))
	for r, rec := range ps.received {
		// A record known only from the application's persisted state (this process never saw
		// its content) asks the peer to resend its last update: the receiver accepts the same
		// sequence again when it has no content to compare, while anything older is still a
		// rollback. Without this, an agent restart would leave what it held in memory empty.
		if !rec.known && rec.seq > 0 {
			out[r] = rec.seq - 1
			continue
		}
		out[r] = rec.seq
	}
	return out
}

func (ps *peerState) lastReceived(r string) record {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.received[r]
}

func (ps *peerState) recordReceived(r string, rec record) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.received[r] = rec
}

// keepReceived drops the receiver records of resources not in keep. keep comes from the peer
// (up to MaxUpdateBytes of keys): it is scanned once, and only the records held here are
// marked, so time is linear and memory bounded by the records, whatever the peer lists.
func (ps *peerState) keepReceived(keep []string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	listed := make(map[string]struct{}, min(len(keep), len(ps.received)))
	for _, r := range keep {
		if _, ok := ps.received[r]; ok {
			listed[r] = struct{}{}
		}
	}
	for r := range ps.received {
		if _, ok := listed[r]; !ok {
			delete(ps.received, r)
		}
	}
}

// forgetReceived drops the receiver record of r.
func (ps *peerState) forgetReceived(r string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.received, r)
}

// attach makes s the current session, ending the previous one first. It returns ErrPeerTerminated
// if the peering was terminated.
func (ps *peerState) attach(s *session) error {
	ps.mu.Lock()
	if ps.terminated {
		ps.mu.Unlock()
		return ErrPeerTerminated
	}
	old := ps.session
	ps.session = s
	ps.inflight = map[string]flight{}
	ps.mu.Unlock()
	if old != nil {
		old.stop(ErrReplaced)
		select {
		case <-old.done:
		case <-time.After(5 * time.Second):
			// The old session is stuck in a send to a dead peer; it no longer touches state.
		}
	}
	return nil
}

// detach ends s's tenure and records how it ended.
func (ps *peerState) detach(s *session, opened bool, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session != s {
		return
	}
	ps.session = nil
	ps.inflight = map[string]flight{}
	if opened {
		ps.info.Connected = false
		ps.info.Since = time.Now()
	}
	ps.info.LastError = ""
	if err != nil {
		ps.info.LastError = err.Error()
	}
	ps.noteEndedLocked(opened, err, time.Now())
}

func (ps *peerState) detachCurrent(err error) {
	ps.mu.Lock()
	s := ps.session
	ps.mu.Unlock()
	if s != nil {
		s.stop(err)
	}
}

func (ps *peerState) setInfo(s *session, f func(*SessionInfo)) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.session == s {
		f(&ps.info)
	}
}

func (ps *peerState) sessionInfo() SessionInfo {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	info := ps.info
	ps.health.fill(&info)
	return info
}

// requestTermination asks for Terminated to be sent and returns a channel closed once it was.
func (ps *peerState) requestTermination(reason string) <-chan struct{} {
	ps.mu.Lock()
	if ps.termSent == nil {
		ps.termSent = make(chan struct{})
		ps.termReason = reason
		if ps.terminated {
			// The peer ended the peering first: nobody is left to tell, and no session can
			// carry the message any more.
			ps.closeTermSentLocked()
		}
	}
	sent := ps.termSent
	ps.mu.Unlock()
	ps.poke()
	return sent
}

// termination returns the pending termination reason, if any.
func (ps *peerState) termination() (string, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.termReason, ps.termSent != nil && !ps.terminated
}

// markTerminated records that the peering ended. A requested termination counts as sent at
// once, unless the session that sent it reports that later with terminationSent: the caller of
// Terminate tears the stream down next (the dialer stops, the state is forgotten), which would
// drop a message still queued in the transport.
func (ps *peerState) markTerminated(sentHere bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.terminated {
		return
	}
	ps.terminated = true
	if !sentHere {
		ps.closeTermSentLocked()
	}
}

// terminationSent reports that the Terminated this agent sent has left (or never will).
func (ps *peerState) terminationSent() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.closeTermSentLocked()
}

func (ps *peerState) closeTermSentLocked() {
	if ps.termSent != nil && !ps.termClosed {
		close(ps.termSent)
		ps.termClosed = true
	}
}
