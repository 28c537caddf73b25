package peering

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecklink/ecklink/internal/peertext"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// session runs one stream with one peer: one receive goroutine feeding one select loop that
// sends (outbox, answers, heartbeats) and watches the receive deadline and the peer's
// certificate (credentials.go).
type session struct {
	m       *Manager
	ps      *peerState
	stream  msgStream
	dialed  bool
	log     hclog.Logger
	limiter *tokenBucket
	id      string
	nonces  uint64
	creds   streamCreds
	// takeOver is set on a session that replaces the current one once the peer answered.
	takeOver *handover

	cancel context.CancelCauseFunc
	done   chan struct{}
	// out feeds the writer goroutine (writer); sendErr is set once a send timed out, after
	// which the stream is never written again.
	out     chan *peerv1.Message
	sent    chan error
	sendErr error

	opened        bool
	peerTimeout   time.Duration
	inventorySent bool
	delayed       []flight
	retry         *time.Timer
}

// serve runs a session with peer over st until it ends, and reports whether the Open exchange
// completed. The Server calls it; the peer's certificate chain comes from ctx.
func (m *Manager) serve(ctx context.Context, peer string, st msgStream, dialed bool) (opened bool, err error) {
	return m.serveWith(ctx, peer, st, sessionOptions{dialed: dialed, chain: peerChain(ctx)})
}

// serveWith is serve with the stream's details; the Dialer calls it. It returns errors, never
// statuses.
func (m *Manager) serveWith(ctx context.Context, peer string, st msgStream, o sessionOptions) (opened bool, err error) {
	if peer == m.cfg.Environment {
		return false, fmt.Errorf("%w: peer has this agent's own environment %q", ErrIdentity, peer)
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	s := &session{
		m:        m,
		ps:       m.peer(peer),
		stream:   st,
		dialed:   o.dialed,
		log:      m.log.With(logPeer, peer, logDialed, o.dialed),
		limiter:  m.updateLimiter(peer, time.Now()),
		id:       hex.EncodeToString(id),
		creds:    newStreamCreds(o),
		takeOver: o.takeOver,
		done:     make(chan struct{}),
		out:      make(chan *peerv1.Message),
		sent:     make(chan error, 1),
	}
	ctx, s.cancel = context.WithCancelCause(ctx)
	defer s.cancel(nil)
	defer close(s.done)
	go s.writer()
	defer close(s.out)
	if s.takeOver == nil {
		if err := s.ps.attach(s); err != nil {
			return false, err
		}
	}
	err = s.run(ctx)
	if s.takeOver != nil {
		s.takeOver.finish(false) // no-op once it took over
	}
	err = s.awaitSuccessor(ctx, err)
	current := s.ps.isCurrent(s)
	s.ps.detach(s, s.opened, err)
	// A replaced session is no disconnection: its successor serves the peer.
	if s.opened && current {
		m.cfg.Handler.OnDisconnected(peer, err)
	}
	switch {
	case errors.Is(err, ErrTerminated):
		s.log.Info("stream closed", logReason, "terminated")
	case errors.Is(err, ErrReplaced), s.opened && !current:
		s.log.Debug("stream replaced by a newer one")
	case errors.Is(err, ErrPeerCredentials):
		s.log.Warn("stream ended: the peer's certificate is no longer valid", logError, err)
	case s.opened:
		s.log.Info("stream closed", logError, err)
	default:
		s.log.Warn("stream refused", logError, err)
	}
	return s.opened, err
}

func (s *session) stop(cause error) { s.cancel(cause) }

func (s *session) run(ctx context.Context) error {
	recvCh := make(chan queued, 2*s.m.cfg.MaxInFlight+8)
	budget := newByteBudget(2 * s.m.cfg.MaxMessageBytes)
	errCh := make(chan error, 1)
	// A Terminated message is often the last thing on a stream the peer closes right after: it
	// is kept aside too, so the end of the stream cannot win the race against it.
	termCh := make(chan *peerv1.Message, 1)
	alive := newLiveness(time.Now())
	go s.read(ctx, recvCh, errCh, termCh, budget, alive)

	if err := s.checkCredentials(); err != nil {
		return err
	}
	applied := s.ps.seedReceived(s.m.cfg.Handler.AppliedSequences(s.ps.name))
	if err := s.send(&peerv1.Message{Kind: &peerv1.Message_Open{Open: &peerv1.Open{
		Environment:       s.m.cfg.Environment,
		Version:           s.m.cfg.Version,
		Protocol:          ProtocolVersion,
		Applied:           applied,
		HeartbeatInterval: durationpb.New(s.m.cfg.HeartbeatInterval),
		Capabilities:      s.m.cfg.Capabilities,
	}}}); err != nil {
		return err
	}
	if s.takeOver != nil {
		if err := s.takeOverOnOpen(ctx, recvCh, errCh, budget); err != nil {
			return err
		}
	}

	deadline := time.NewTimer(s.receiveTimeout())
	defer deadline.Stop()
	heartbeat := time.NewTicker(s.m.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	s.retry = time.NewTimer(time.Hour)
	s.retry.Stop()
	defer s.retry.Stop()

	for {
		select {
		case <-ctx.Done():
			if err := s.pendingTermination(ctx, termCh); err != nil {
				return err
			}
			return context.Cause(ctx)
		case err := <-errCh:
			if err := s.pendingTermination(ctx, termCh); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("peer closed the stream")
			}
			return fmt.Errorf("failed to receive: %w", err)
		case q := <-recvCh:
			err := s.handle(ctx, q.msg)
			budget.release(q.size)
			if err != nil {
				return err
			}
			// Any message proves the peer alive; after its Open, its own interval counts.
			deadline.Reset(s.receiveTimeout())
		case <-s.ps.kick:
		case <-heartbeat.C:
			if err := s.send(&peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{Sent: timestamppb.Now()}}}); err != nil {
				return err
			}
		case <-deadline.C:
			// The timer may have fired while this loop was blocked sending, with the peer's
			// messages queued meanwhile: only a peer silent for the whole timeout is dropped.
			wait := alive.remaining(time.Now(), s.receiveTimeout())
			if wait == 0 {
				return fmt.Errorf("%w (%s)", ErrReceiveTimeout, s.receiveTimeout())
			}
			deadline.Reset(wait)
		case <-s.retry.C:
			s.ps.resend(s, s.delayed)
			s.delayed = nil
		case <-s.creds.recheck:
			if err := s.checkCredentials(); err != nil {
				return err
			}
		case <-s.creds.timer:
			if err := s.checkCredentials(); err != nil {
				return err
			}
		}
		if err := s.flush(); err != nil {
			if errors.Is(err, ErrTerminated) {
				s.linger(errCh)
				s.ps.terminationSent()
			}
			return err
		}
	}
}

// read is the receive goroutine: it queues the peer's messages for the session loop, within the
// byte budget, and reports the end of the stream on errCh.
func (s *session) read(ctx context.Context, recvCh chan<- queued, errCh chan<- error, termCh chan<- *peerv1.Message, budget *byteBudget, alive *liveness) {
	for {
		msg, err := s.stream.Recv()
		if err != nil {
			errCh <- err
			return
		}
		alive.received(time.Now())
		if msg.GetTerminated() != nil {
			select {
			case termCh <- msg:
			default:
			}
		}
		size := proto.Size(msg)
		if budget.acquire(ctx, size) != nil {
			return
		}
		select {
		case recvCh <- queued{msg: msg, size: size}:
			alive.queued(time.Now())
		case <-ctx.Done():
			return
		}
	}
}

// pendingTermination handles a Terminated message received but not yet processed when the
// stream ended.
func (s *session) pendingTermination(ctx context.Context, termCh <-chan *peerv1.Message) error {
	select {
	case msg := <-termCh:
		if s.opened {
			return s.handle(ctx, msg)
		}
	default:
	}
	return nil
}

// linger half-closes a client stream after this agent sent Terminated and waits (briefly) for
// the server to end it, so that cancelling the stream cannot drop the message in flight. Servers
// need not wait: returning from the handler flushes the stream before its status.
func (s *session) linger(errCh <-chan error) {
	hc, ok := s.stream.(interface{ CloseSend() error })
	if !ok {
		return
	}
	if err := hc.CloseSend(); err != nil {
		return
	}
	select {
	case <-errCh:
	case <-time.After(5 * time.Second):
	}
}

// receiveTimeout is 3 times the peer's heartbeat interval, bounded, or OpenTimeout before Open.
func (s *session) receiveTimeout() time.Duration {
	if !s.opened {
		return s.m.cfg.OpenTimeout
	}
	return s.peerTimeout
}

// send writes m on the stream through the writer goroutine and waits at most SendTimeout: a
// gRPC Send blocks while the peer's flow-control window is shut, and a peer that stops reading
// must not hold this session (and the resources it pins) forever. After a timeout the session
// ends; the blocked Send returns when the stream is torn down.
func (s *session) send(m *peerv1.Message) error {
	if s.sendErr != nil {
		return s.sendErr
	}
	s.out <- m
	t := time.NewTimer(s.m.cfg.SendTimeout)
	defer t.Stop()
	select {
	case err := <-s.sent:
		if err != nil {
			return fmt.Errorf("failed to send: %w", err)
		}
		return nil
	case <-t.C:
		s.sendErr = fmt.Errorf("%w (%s)", ErrSendTimeout, s.m.cfg.SendTimeout)
		return s.sendErr
	}
}

// writer is the only goroutine that writes the stream; it ends when the session closes out.
func (s *session) writer() {
	for m := range s.out {
		s.sent <- s.stream.Send(m)
	}
}

func (s *session) nonce() string {
	s.nonces++
	return s.id + "-" + strconv.FormatUint(s.nonces, 10)
}

// flush sends a pending Terminated, then outbox updates up to the in-flight window, then, once
// the initial backlog is out, the session's Inventory.
func (s *session) flush() error {
	if !s.opened {
		return nil
	}
	if reason, ok := s.ps.termination(); ok {
		if err := s.send(&peerv1.Message{Kind: &peerv1.Message_Terminated{Terminated: &peerv1.Terminated{Reason: reason}}}); err != nil {
			return err
		}
		s.ps.markTerminated(true)
		return fmt.Errorf("%w by this agent: %s", ErrTerminated, reason)
	}
	for {
		if _, inflight := s.ps.pending(); inflight >= s.m.cfg.MaxInFlight {
			return nil
		}
		u := s.ps.next(s, s.nonce)
		if u == nil && !s.inventorySent {
			s.inventorySent = true
			u = s.ps.inventory(s, s.nonce)
		}
		if u == nil {
			return nil
		}
		if err := s.send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}); err != nil {
			return err
		}
		s.log.Debug("sent update", logResource, u.Resource, logSequence, u.Sequence)
	}
}

// handle processes one received message; an error ends the session.
func (s *session) handle(ctx context.Context, msg *peerv1.Message) error {
	if o, ok := msg.GetKind().(*peerv1.Message_Open); ok {
		if s.opened {
			return fmt.Errorf("%w: second Open on the stream", ErrProtocol)
		}
		return s.handleOpen(o.Open)
	}
	if !s.opened {
		return fmt.Errorf("%w: first message must be Open, got %s", ErrProtocol, kindName(msg))
	}
	switch k := msg.GetKind().(type) {
	case *peerv1.Message_Update:
		reply := s.receive(ctx, k.Update)
		s.ps.noteReply(k.Update, reply)
		return s.send(reply)
	case *peerv1.Message_Ack:
		s.answered(k.Ack.GetNonce(), true, "", "")
	case *peerv1.Message_Nack:
		s.answered(k.Nack.GetNonce(), false, k.Nack.GetReason(), k.Nack.GetMessage())
	case *peerv1.Message_Heartbeat:
		now := time.Now()
		s.ps.setInfo(s, func(i *SessionInfo) { i.LastHeartbeat = now })
	case *peerv1.Message_Terminated:
		reason := clean(k.Terminated.GetReason(), 256)
		s.ps.markTerminated(false)
		s.m.cfg.Handler.HandleTerminated(s.ps.name, reason)
		return fmt.Errorf("%w by the peer: %s", ErrTerminated, reason)
	default:
		return s.send(nack(&peerv1.Update{}, ReasonUnknownMessage, "unknown message kind; this agent speaks protocol "+strconv.Itoa(ProtocolVersion)))
	}
	return nil
}

func (s *session) handleOpen(o *peerv1.Open) error {
	if o.GetEnvironment() != s.ps.name {
		return fmt.Errorf("%w: Open names environment %q but the certificate names %q", ErrIdentity, clean(o.GetEnvironment(), 64), s.ps.name)
	}
	if o.GetProtocol() != ProtocolVersion {
		return fmt.Errorf("%w: peer speaks protocol %d, this agent speaks %d", ErrProtocol, o.GetProtocol(), ProtocolVersion)
	}
	interval := s.m.cfg.HeartbeatInterval
	if d := o.GetHeartbeatInterval(); d != nil && d.IsValid() && d.AsDuration() > 0 {
		interval = d.AsDuration()
	}
	if err := s.ps.checkApplied(o.GetApplied()); err != nil {
		return err
	}
	s.peerTimeout = min(max(3*interval, minReceiveTimeout), maxReceiveTimeout)
	s.opened = true
	acks := s.ps.open(s, o.GetApplied())
	now := time.Now()
	var info SessionInfo
	s.ps.setInfo(s, func(i *SessionInfo) {
		*i = SessionInfo{Peer: s.ps.name, Connected: true, Dialed: s.dialed, Since: now, LastHeartbeat: now,
			PeerVersion: clean(o.GetVersion(), 64), PeerProtocol: o.GetProtocol(), LocalCertificate: s.creds.local,
			Capabilities: peerCapabilities(o.GetCapabilities())}
		if len(s.creds.chain) > 0 {
			i.PeerCertificate = s.creds.chain[0]
		}
		info = *i
	})
	s.log.Info("stream open", logVersion, info.PeerVersion, logTimeout, s.peerTimeout)
	for _, a := range acks {
		s.m.cfg.Handler.OnAck(s.ps.name, a.resource, a.seq)
	}
	s.m.cfg.Handler.OnConnected(info)
	return nil
}

// answered delivers an Ack or Nack to the application; RateLimited updates are also resent.
func (s *session) answered(nonce string, applied bool, reason, message string) {
	f, ok := s.ps.answer(s, nonce, applied)
	if !ok {
		return
	}
	if reason != ReasonRateLimited {
		s.ps.noteAnswer(f, applied, reason, message)
	}
	if applied {
		s.m.cfg.Handler.OnAck(s.ps.name, f.resource, f.seq)
		return
	}
	reason, message = clean(reason, 64), clean(message, 1024)
	if reason == ReasonRateLimited {
		if len(s.delayed) == 0 {
			s.retry.Reset(s.m.cfg.RateLimitedRetry)
		}
		s.delayed = append(s.delayed, f)
	} else {
		// The one log line of a Nack received (the handler does not log it).
		s.log.Warn("the peer refused an update", logResource, f.resource, logSequence, f.seq, logReason, reason,
			logMessage, peertext.Clean(message, peertext.Log))
	}
	s.m.cfg.Handler.OnNack(s.ps.name, f.resource, f.seq, reason, message)
}

func kindName(msg *peerv1.Message) string {
	switch msg.GetKind().(type) {
	case *peerv1.Message_Update:
		return "Update"
	case *peerv1.Message_Ack:
		return "Ack"
	case *peerv1.Message_Nack:
		return "Nack"
	case *peerv1.Message_Heartbeat:
		return "Heartbeat"
	case *peerv1.Message_Terminated:
		return "Terminated"
	default:
		return "an unknown message"
	}
}

// clean bounds a peer-supplied string and drops control characters before it is logged or
// stored in status.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "")
}
