package peering

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// A stream is authenticated by its TLS handshake, once. Without more, it would outlive the peer
// certificate it was opened with and any later change of trust: a CA dropped from a Peer, a leaf
// that expired. So each session keeps the chain its peer presented and checks it again:
//   - at the chain's expiry (the peer's leaf NotAfter, or its CA's if earlier): the stream ends;
//   - whenever the CAs trusted for the peer change (Manager.Recheck) or this agent's own CAs do
//     (Manager.RecheckAll), and every Config.RecheckInterval: a chain that no longer verifies
//     ends the stream.
//
// Ending a stream at the peer's leaf expiry must not disconnect peers in normal operation: the
// dialing side replaces its stream before either leaf expires (Credentials.RenewAt; leaves renew
// at 2/3 of their life), make-before-break: the new connection handshakes with the current
// leaves and takes over once the peer answered its Open, then the old one closes.

// Credentials checks the certificates a stream was opened with, for as long as it lasts. The
// identity package implements it (identity.StreamChecker).
type Credentials interface {
	// VerifyPeer verifies chain (leaf first, as peer presented it for usage) against the CAs
	// trusted for peer now.
	VerifyPeer(peer string, chain []*x509.Certificate, usage x509.ExtKeyUsage) error
	// RenewAt tells when a stream this agent dialed to peer, opened with this agent's leaf local
	// and the peer's chain, should be replaced by a new connection, and why. The zero time means
	// never; a time already passed means now.
	RenewAt(peer string, local *x509.Certificate, chain []*x509.Certificate) (time.Time, string)
}

// ErrPeerCredentials ends a session whose peer certificate expired or no longer chains to a CA
// trusted for the peer.
var ErrPeerCredentials = errors.New("the peer's certificate is no longer valid")

// sessionOptions describe a stream beyond its peer's name.
type sessionOptions struct {
	// dialed is true when this agent opened the stream.
	dialed bool
	// chain is the certificate chain the peer presented in the handshake (none without TLS).
	chain []*x509.Certificate
	// local is the leaf this agent presented, when it dialed.
	local *x509.Certificate
	// ctl links a dialed session to its Dialer, nil otherwise.
	ctl *dialControl
	// takeOver, when set, makes the session replace the current one only once the peer answered
	// its Open: until then the current session keeps serving.
	takeOver *handover
}

// peerChain returns the certificate chain of the peer of a server stream's context.
func peerChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return info.State.PeerCertificates
}

// dialControl is what a Dialer shares with one session it dialed.
type dialControl struct {
	// renew receives (once) the reason why the session asks to be replaced.
	renew chan string
	// renewable is false for a replacement that got the same certificates as the stream it
	// replaced: replacing it again could not do better.
	renewable bool
	// successor is set while a session opens to replace this one.
	successor atomic.Pointer[handover]
}

func newDialControl() *dialControl { return &dialControl{renew: make(chan string, 1), renewable: true} }

// handover is a session opening to replace the current one (make-before-break).
type handover struct {
	done     chan struct{}
	once     sync.Once
	attached atomic.Bool
}

func newHandover() *handover { return &handover{done: make(chan struct{})} }

// finish records whether the successor took over; only the first call counts.
func (h *handover) finish(attached bool) {
	h.once.Do(func() {
		h.attached.Store(attached)
		close(h.done)
	})
}

// streamCreds is a session's view of the certificates its stream was opened with.
type streamCreds struct {
	chain []*x509.Certificate
	usage x509.ExtKeyUsage
	local *x509.Certificate
	ctl   *dialControl
	// renewAsked is set once the session asked its dialer for a replacement.
	renewAsked bool
	recheck    chan struct{}
	// timer fires at the next check; nil without a chain.
	timer <-chan time.Time
}

func newStreamCreds(o sessionOptions) streamCreds {
	usage := x509.ExtKeyUsageClientAuth
	if o.dialed {
		usage = x509.ExtKeyUsageServerAuth
	}
	return streamCreds{chain: o.chain, usage: usage, local: o.local, ctl: o.ctl, recheck: make(chan struct{}, 1)}
}

// chainExpiry is when the first certificate of chain expires.
func chainExpiry(chain []*x509.Certificate) time.Time {
	var exp time.Time
	for _, c := range chain {
		if exp.IsZero() || c.NotAfter.Before(exp) {
			exp = c.NotAfter
		}
	}
	return exp
}

// checkCredentials verifies the peer's chain again and arms the timer of the next check. An
// error (ErrPeerCredentials) ends the session. A dialed session whose stream is due for renewal
// asks its dialer, once, for a replacement.
func (s *session) checkCredentials() error {
	c := &s.creds
	if len(c.chain) == 0 {
		return nil
	}
	cfg := &s.m.cfg
	now := cfg.Clock.Now()
	exp := chainExpiry(c.chain)
	if now.After(exp) {
		return fmt.Errorf("%w: it expired at %s", ErrPeerCredentials, exp.UTC().Format(time.RFC3339))
	}
	if cfg.Credentials != nil {
		if err := cfg.Credentials.VerifyPeer(s.ps.name, c.chain, c.usage); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerCredentials, err)
		}
	}
	// Verification accepts a certificate up to and including its NotAfter: check just after.
	next := exp.Add(time.Millisecond)
	if cfg.RecheckInterval > 0 {
		next = earliest(next, now.Add(cfg.RecheckInterval))
	}
	if at, reason := s.renewAt(); !at.IsZero() {
		// "Now" as Credentials saw it is already past: read the clock again.
		if at.After(cfg.Clock.Now()) {
			next = earliest(next, at)
		} else {
			c.renewAsked = true
			s.log.Info("replacing the stream with a new connection", logReason, reason)
			select {
			case c.ctl.renew <- reason:
			default:
			}
		}
	}
	c.timer = cfg.Clock.After(next.Sub(now))
	return nil
}

// renewAt is when a dialed stream should be replaced, zero if it should not (any more).
func (s *session) renewAt() (time.Time, string) {
	c := &s.creds
	if c.ctl == nil || !c.ctl.renewable || c.renewAsked || s.m.cfg.Credentials == nil {
		return time.Time{}, ""
	}
	return s.m.cfg.Credentials.RenewAt(s.ps.name, c.local, c.chain)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Recheck verifies the peer certificate of the live stream with peer again, at once: call it
// when the CAs trusted for peer change. A stream whose certificate no longer verifies ends.
func (m *Manager) Recheck(peer string) {
	ps := m.knownPeer(peer)
	if ps != nil {
		ps.recheck()
	}
}

// RecheckAll does Recheck for every peer: call it when this agent's own CAs change, so that the
// streams it dialed move to its new CA.
func (m *Manager) RecheckAll() {
	m.mu.Lock()
	states := make([]*peerState, 0, len(m.peers))
	for _, ps := range m.peers {
		states = append(states, ps)
	}
	m.mu.Unlock()
	for _, ps := range states {
		ps.recheck()
	}
}

func (ps *peerState) recheck() {
	ps.mu.Lock()
	s := ps.session
	ps.mu.Unlock()
	if s != nil {
		select {
		case s.creds.recheck <- struct{}{}:
		default:
		}
	}
}

func (ps *peerState) isCurrent(s *session) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.session == s
}

// takeOverOnOpen is the start of a session that replaces the current one: it waits for the
// peer's Open, which proves that the peer accepted this stream (and closed the one it replaces),
// then becomes the current session and handles it. Until then the current session serves.
func (s *session) takeOverOnOpen(ctx context.Context, recvCh <-chan queued, errCh <-chan error, budget *byteBudget) error {
	timeout := time.NewTimer(s.m.cfg.OpenTimeout)
	defer timeout.Stop()
	var q queued
	select {
	case q = <-recvCh:
	case err := <-errCh:
		return fmt.Errorf("failed to receive: %w", err)
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-timeout.C:
		return fmt.Errorf("%w (%s) for the peer's Open", ErrReceiveTimeout, s.m.cfg.OpenTimeout)
	}
	defer budget.release(q.size)
	if q.msg.GetOpen() == nil {
		return fmt.Errorf("%w: first message must be Open, got %s", ErrProtocol, kindName(q.msg))
	}
	if err := s.ps.attach(s); err != nil {
		return err
	}
	s.takeOver.finish(true)
	// Trust may have changed while this stream opened, with the rechecks going to its predecessor.
	if err := s.checkCredentials(); err != nil {
		return err
	}
	return s.handle(ctx, q.msg)
}

// awaitSuccessor keeps a dialed session's place while the connection replacing it opens: the
// peer closes this stream as soon as it accepted the new one, which may be before this agent
// received the peer's Open on the new one. It returns ErrReplaced once the successor took over.
func (s *session) awaitSuccessor(ctx context.Context, err error) error {
	if s.creds.ctl == nil || errors.Is(err, ErrReplaced) {
		return err
	}
	h := s.creds.ctl.successor.Load()
	if h == nil {
		return err
	}
	wait := time.NewTimer(s.m.cfg.OpenTimeout)
	defer wait.Stop()
	select {
	case <-h.done:
	case <-ctx.Done():
	case <-wait.C:
	}
	if errors.Is(context.Cause(ctx), ErrReplaced) || !s.ps.isCurrent(s) {
		return ErrReplaced
	}
	return err
}
