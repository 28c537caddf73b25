package peering

import (
	"errors"
	"strings"
	"time"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Failures classify why the last stream with a peer ended or could not open (SessionInfo.Failure).
const (
	// FailureDial: no endpoint of the peer accepted a connection.
	FailureDial = "dial"
	// FailureHandshake: the TLS handshake or the peer identity check failed.
	FailureHandshake = "handshake"
	// FailureHeartbeat: the peer sent nothing within the receive deadline.
	FailureHeartbeat = "heartbeat"
	// FailureStream: the stream broke or the peer closed it.
	FailureStream = "stream"
	// FailureTerminated: the peering was ended (Terminated sent or received).
	FailureTerminated = "terminated"
)

// Bounds of what the stream health keeps from the peer (it ends up in Peer status).
const (
	healthReasonLen  = 64
	healthMessageLen = 256
	healthErrorLen   = 1000
)

// NackRecord is a refused update, as the stream health reports it. Reason and message are
// clipped and cleaned: they may come from the peer.
type NackRecord struct {
	Resource string
	Sequence uint64
	Reason   string
	Message  string
	At       time.Time
}

// AppliedRecord is an update one side acknowledged.
type AppliedRecord struct {
	Resource string
	Sequence uint64
	At       time.Time
}

// streamHealth is what the Manager remembers of a peer's streams across sessions (Consul keeps
// the same per peering: last NACK, last errors, last receive), for Peer status and agentctl.
// It lives in peerState and is guarded by its mutex.
type streamHealth struct {
	dialing          string // endpoint the dialer tries now
	endpoint         string // endpoint of the current or last opened stream, when dialed
	lastConnected    time.Time
	lastDisconnected time.Time
	lastError        string
	failure          string
	nackSent         *NackRecord
	nackReceived     *NackRecord
	applied          *AppliedRecord
	peerApplied      *AppliedRecord
}

// fill copies the health into info.
func (h *streamHealth) fill(info *SessionInfo) {
	info.Endpoint = h.endpoint
	info.LastConnected, info.LastDisconnected = h.lastConnected, h.lastDisconnected
	info.LastError, info.Failure = h.lastError, h.failure
	info.LastNackSent, info.LastNackReceived = copyNack(h.nackSent), copyNack(h.nackReceived)
	info.LastApplied, info.PeerLastApplied = copyApplied(h.applied), copyApplied(h.peerApplied)
}

func copyNack(n *NackRecord) *NackRecord {
	if n == nil {
		return nil
	}
	c := *n
	return &c
}

func copyApplied(a *AppliedRecord) *AppliedRecord {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// classify names the failure of err, an error that ended a session or a dial.
func classify(err error, dial bool) string {
	msg := err.Error()
	switch {
	case errors.Is(err, ErrTerminated), errors.Is(err, ErrPeerTerminated):
		return FailureTerminated
	case errors.Is(err, ErrReceiveTimeout):
		return FailureHeartbeat
	// A handshake cut short (EOF, reset: the peer, or a load balancer in front of it, is down)
	// is a reachability problem; only a refused certificate is a trust problem.
	case errors.Is(err, ErrIdentity), strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
		return FailureHandshake
	case dial:
		return FailureDial
	}
	return FailureStream
}

// noteOpened records a stream that opened now (called with ps.mu held, from open).
func (ps *peerState) noteOpenedLocked(now time.Time) {
	ps.health.lastConnected = now
	ps.health.endpoint = ps.health.dialing
	ps.health.lastError, ps.health.failure = "", ""
}

// noteEndedLocked records the end of a session (called with ps.mu held, from detach).
func (ps *peerState) noteEndedLocked(opened bool, err error, now time.Time) {
	if opened {
		ps.health.lastDisconnected = now
	}
	if err != nil && !errors.Is(err, ErrReplaced) {
		ps.health.lastError, ps.health.failure = clean(err.Error(), healthErrorLen), classify(err, false)
	}
}

// noteDialing records the endpoint the dialer tries, so the stream that opens on it is known.
func (ps *peerState) noteDialing(endpoint string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.health.dialing = endpoint
}

// noteDialFailure records a connection attempt on which no session ran.
func (ps *peerState) noteDialFailure(err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.health.lastError, ps.health.failure = clean(err.Error(), healthErrorLen), classify(err, true)
}

// noteReply records what this agent answered to an update of the peer: the last one applied,
// or the last refusal.
func (ps *peerState) noteReply(u *peerv1.Update, reply *peerv1.Message) {
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	switch k := reply.GetKind().(type) {
	case *peerv1.Message_Ack:
		if u.GetInventory() == nil {
			ps.health.applied = &AppliedRecord{Resource: clean(u.GetResource(), maxResourceLen), Sequence: u.GetSequence(), At: now}
		}
	case *peerv1.Message_Nack:
		if k.Nack.GetReason() == ReasonRateLimited {
			return // flow control, not a refusal: the peer sends it again
		}
		ps.health.nackSent = &NackRecord{Resource: k.Nack.GetResource(), Sequence: k.Nack.GetSequence(),
			Reason: clean(k.Nack.GetReason(), healthReasonLen), Message: clean(k.Nack.GetMessage(), healthMessageLen), At: now}
	}
}

// noteAnswer records the peer's answer to one of this agent's updates. reason and message
// come from the peer: they are clipped.
func (ps *peerState) noteAnswer(f flight, applied bool, reason, message string) {
	now := time.Now()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if applied {
		ps.health.peerApplied = &AppliedRecord{Resource: f.resource, Sequence: f.seq, At: now}
		return
	}
	ps.health.nackReceived = &NackRecord{Resource: f.resource, Sequence: f.seq,
		Reason: clean(reason, healthReasonLen), Message: clean(message, healthMessageLen), At: now}
}

// noteDialing records the endpoint the dialer tries for peer.
func (m *Manager) noteDialing(peer, endpoint string) { m.peer(peer).noteDialing(endpoint) }

// noteDialFailure records a failed connection attempt to peer.
func (m *Manager) noteDialFailure(peer string, err error) { m.peer(peer).noteDialFailure(err) }
