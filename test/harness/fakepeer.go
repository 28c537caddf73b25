package harness

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// FakePeer is a test-only peer agent with its own identity (an agent CA and leaf, kept in a fake
// Kubernetes client), paired with a real agent by Peer objects like any other. It speaks the
// stream protocol by hand, so a test can send what no real agent would: invalid material,
// sequence rollbacks, unknown messages, floods.
type FakePeer struct {
	Env string
	id  *identity.Identity
}

// NewFakePeer creates the identity of environment env.
func NewFakePeer(ctx context.Context, env string) (*FakePeer, error) {
	id, err := identity.New(identity.Config{Environment: env, Namespace: AgentNamespace, Client: fake.NewClientset()})
	if err != nil {
		return nil, err
	}
	if err := id.Init(ctx); err != nil {
		return nil, err
	}
	return &FakePeer{Env: env, id: id}, nil
}

// Bundle is the fake's agent CA bundle.
func (f *FakePeer) Bundle() []byte { return f.id.Bundle() }

// PairWith creates the Peer for the fake in c: c accepts, the fake dials.
func (f *FakePeer) PairWith(ctx context.Context, c *Cluster) error {
	return createPeer(ctx, c, Identity{Environment: f.Env, Bundle: string(f.Bundle())}, false)
}

// staticTrust trusts one environment's bundle.
type staticTrust struct {
	env  string
	cert []*x509.Certificate
}

func (s staticTrust) PeerCAs(env string) []*x509.Certificate {
	if env == s.env {
		return s.cert
	}
	return nil
}

func (s staticTrust) Environments() []string { return []string{s.env} }

// Answer is what the agent answered to one update.
type Answer struct {
	Acked   bool
	Reason  string
	Message string
}

// ConnectOptions tune a FakeStream.
type ConnectOptions struct {
	// Applied is announced in Open, for the agent's resources.
	Applied map[string]uint64
	// HeartbeatInterval is announced in Open and is how often the fake sends a heartbeat
	// (default 1s).
	HeartbeatInterval time.Duration
	// Capabilities are announced in Open (none by default, as a 0.1.0 agent).
	Capabilities []string
}

// StreamStats count what went over a FakeStream: messages by kind as decoded, and bytes on the
// wire (TLS records, HTTP/2 frames and all) as the connection carried them.
type StreamStats struct {
	HeartbeatsIn, HeartbeatsOut int64
	UpdatesIn                   int64
	BytesIn, BytesOut           int64
}

// Sub is s minus an earlier snapshot.
func (s StreamStats) Sub(o StreamStats) StreamStats {
	return StreamStats{HeartbeatsIn: s.HeartbeatsIn - o.HeartbeatsIn, HeartbeatsOut: s.HeartbeatsOut - o.HeartbeatsOut,
		UpdatesIn: s.UpdatesIn - o.UpdatesIn, BytesIn: s.BytesIn - o.BytesIn, BytesOut: s.BytesOut - o.BytesOut}
}

// Add is s plus o.
func (s StreamStats) Add(o StreamStats) StreamStats {
	return StreamStats{HeartbeatsIn: s.HeartbeatsIn + o.HeartbeatsIn, HeartbeatsOut: s.HeartbeatsOut + o.HeartbeatsOut,
		UpdatesIn: s.UpdatesIn + o.UpdatesIn, BytesIn: s.BytesIn + o.BytesIn, BytesOut: s.BytesOut + o.BytesOut}
}

type streamCounters struct {
	heartbeatsIn, heartbeatsOut, updatesIn, bytesIn, bytesOut atomic.Int64
}

// countingConn counts the bytes a connection carries.
type countingConn struct {
	net.Conn
	c *streamCounters
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.c.bytesIn.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.c.bytesOut.Add(int64(n))
	return n, err
}

// FakeStream is an open Sync stream of a FakePeer with a real agent. Updates from the agent are
// acknowledged at once and heartbeats are sent every second (ConnectOptions.HeartbeatInterval),
// so that the stream stays up.
type FakeStream struct {
	counters streamCounters
	conn     *grpc.ClientConn
	stream   grpc.BidiStreamingClient[peerv1.SyncRequest, peerv1.SyncResponse]
	cancel   context.CancelFunc
	done     chan struct{}
	nonces   atomic.Uint64
	sendMu   sync.Mutex

	paused atomic.Pointer[chan struct{}] // closed to resume reading

	// acks are the Acks of the agent's updates, waiting for ackWriter. The reader never sends
	// itself: a test's Send blocked by flow control (the agent not reading while its own
	// answers wait to be read) holds sendMu, and a reader waiting for it would stop reading the
	// agent's answers: the three would wait on each other for ever.
	ackMu   sync.Mutex
	acks    []*peerv1.Message
	ackWake chan struct{}

	mu       sync.Mutex
	open     *peerv1.Open
	answers  map[string]Answer
	nacks    []*peerv1.Nack // every Nack, including those without a nonce
	received []*peerv1.Update
	err      error
	changed  chan struct{}
}

// Connect dials c's agent, sends Open (announcing applied for the agent's resources) and waits
// for the agent's Open.
func (f *FakePeer) Connect(ctx context.Context, c *Cluster, applied map[string]uint64) (*FakeStream, error) {
	return f.ConnectWith(ctx, c, ConnectOptions{Applied: applied})
}

// ConnectWith is Connect with options.
func (f *FakePeer) ConnectWith(ctx context.Context, c *Cluster, o ConnectOptions) (*FakeStream, error) {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = time.Second
	}
	cid, err := c.Identity(ctx)
	if err != nil {
		return nil, err
	}
	certs, err := pemutil.ParseCertificates([]byte(cid.Bundle), pemutil.Limits{})
	if err != nil {
		return nil, err
	}
	tlsConf := f.id.ClientTLSConfig(staticTrust{env: c.Name, cert: certs}, c.Name)
	s := &FakeStream{done: make(chan struct{}), answers: map[string]Answer{}, changed: make(chan struct{}), ackWake: make(chan struct{}, 1)}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: raw, c: &s.counters}, nil
	}
	conn, err := grpc.NewClient(c.Endpoint, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)), grpc.WithContextDialer(dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := peerv1.NewPeerServiceClient(conn).Sync(sctx)
	if err != nil {
		cancel()
		_ = conn.Close()
		return nil, fmt.Errorf("failed to open stream: %w", err)
	}
	s.conn, s.stream, s.cancel = conn, stream, cancel
	if err := s.Send(&peerv1.Message{Kind: &peerv1.Message_Open{Open: &peerv1.Open{
		Environment: f.Env, Version: "fake", Protocol: 1, Applied: o.Applied, HeartbeatInterval: durationpb.New(o.HeartbeatInterval),
		Capabilities: o.Capabilities,
	}}}); err != nil {
		s.Close()
		return nil, err
	}
	go s.receive()
	go s.ackWriter(sctx)
	go s.heartbeat(sctx, o.HeartbeatInterval)
	if err := s.wait(ctx, 30*time.Second, func() bool { return s.open != nil }); err != nil {
		s.Close()
		return nil, fmt.Errorf("no Open from %s: %w", c.Name, err)
	}
	return s, nil
}

// Send sends one message as is.
func (s *FakeStream) Send(m *peerv1.Message) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(&peerv1.SyncRequest{Message: m})
}

// Nonce returns a fresh nonce.
func (s *FakeStream) Nonce() string { return "fake-" + strconv.FormatUint(s.nonces.Add(1), 10) }

// Update sends u (with a fresh nonce if it has none) and waits for its Ack or Nack.
func (s *FakeStream) Update(ctx context.Context, u *peerv1.Update) (Answer, error) {
	if u.Nonce == "" {
		u.Nonce = s.Nonce()
	}
	if err := s.Send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}); err != nil {
		return Answer{}, err
	}
	return s.Answer(ctx, u.Nonce, 30*time.Second)
}

// Answer waits for the answer to nonce.
func (s *FakeStream) Answer(ctx context.Context, nonce string, within time.Duration) (Answer, error) {
	var a Answer
	err := s.wait(ctx, within, func() bool {
		var ok bool
		a, ok = s.answers[nonce]
		return ok
	})
	return a, err
}

// Answered returns the answer to nonce, if one arrived.
func (s *FakeStream) Answered(nonce string) (Answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.answers[nonce]
	return a, ok
}

// Nacks returns every Nack received so far.
func (s *FakeStream) Nacks() []*peerv1.Nack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nacks)
}

// WaitNack waits for a Nack that match accepts.
func (s *FakeStream) WaitNack(ctx context.Context, within time.Duration, match func(*peerv1.Nack) bool) (*peerv1.Nack, error) {
	var found *peerv1.Nack
	err := s.wait(ctx, within, func() bool {
		for _, n := range s.nacks {
			if match(n) {
				found = n
				return true
			}
		}
		return false
	})
	return found, err
}

// Received returns the updates the agent sent so far.
func (s *FakeStream) Received() []*peerv1.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// PeerOpen is the agent's Open.
func (s *FakeStream) PeerOpen() *peerv1.Open {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// Err is why the stream ended, or nil while it is up.
func (s *FakeStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the stream. A paused reader is released first, so Close never waits on it; and
// it waits for the reader at most 30s (a test that fails mid-flood must fail, not hang).
func (s *FakeStream) Close() {
	s.ResumeReading()
	s.cancel()
	_ = s.conn.Close()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
}

// Stats returns what the stream carried so far.
func (s *FakeStream) Stats() StreamStats {
	c := &s.counters
	return StreamStats{HeartbeatsIn: c.heartbeatsIn.Load(), HeartbeatsOut: c.heartbeatsOut.Load(), UpdatesIn: c.updatesIn.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load()}
}

// WaitReceived waits until more than n updates arrived and returns those after the first n.
func (s *FakeStream) WaitReceived(ctx context.Context, within time.Duration, n int) ([]*peerv1.Update, error) {
	var out []*peerv1.Update
	err := s.wait(ctx, within, func() bool {
		if len(s.received) > n {
			out = slices.Clone(s.received[n:])
			return true
		}
		return false
	})
	return out, err
}

func (s *FakeStream) heartbeat(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Send(&peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{Sent: timestamppb.Now()}}}) == nil {
				s.counters.heartbeatsOut.Add(1)
			}
		}
	}
}

// PauseReading stops reading the agent's messages (its answers pile up in the transport until
// flow control makes the agent's sends block), as a peer that does not keep up would.
func (s *FakeStream) PauseReading() {
	ch := make(chan struct{})
	s.paused.Store(&ch)
}

// ResumeReading reads again after PauseReading.
func (s *FakeStream) ResumeReading() {
	if ch := s.paused.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (s *FakeStream) receive() {
	defer close(s.done)
	for {
		if ch := s.paused.Load(); ch != nil {
			<-*ch
		}
		resp, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.notifyLocked()
			s.mu.Unlock()
			return
		}
		m := resp.GetMessage()
		s.mu.Lock()
		switch k := m.GetKind().(type) {
		case *peerv1.Message_Open:
			s.open = k.Open
		case *peerv1.Message_Ack:
			s.answers[k.Ack.GetNonce()] = Answer{Acked: true}
		case *peerv1.Message_Nack:
			s.nacks = append(s.nacks, k.Nack)
			if k.Nack.GetNonce() != "" {
				s.answers[k.Nack.GetNonce()] = Answer{Reason: k.Nack.GetReason(), Message: k.Nack.GetMessage()}
			}
		case *peerv1.Message_Update:
			s.received = append(s.received, k.Update)
			s.counters.updatesIn.Add(1)
		case *peerv1.Message_Heartbeat:
			s.counters.heartbeatsIn.Add(1)
		}
		s.notifyLocked()
		s.mu.Unlock()
		if u := m.GetUpdate(); u != nil {
			s.ackMu.Lock()
			s.acks = append(s.acks, &peerv1.Message{Kind: &peerv1.Message_Ack{Ack: &peerv1.Ack{Nonce: u.GetNonce(), Resource: u.GetResource(), Sequence: u.GetSequence()}}})
			s.ackMu.Unlock()
			select {
			case s.ackWake <- struct{}{}:
			default:
			}
		}
	}
}

// ackWriter sends the Acks the reader queued, in order, until the stream's context ends.
func (s *FakeStream) ackWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ackWake:
		}
		s.ackMu.Lock()
		acks := s.acks
		s.acks = nil
		s.ackMu.Unlock()
		for _, a := range acks {
			_ = s.Send(a)
		}
	}
}

func (s *FakeStream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait re-checks cond (called with s.mu held) whenever something arrives.
func (s *FakeStream) wait(ctx context.Context, within time.Duration, cond func() bool) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return fmt.Errorf("stream ended: %w", err)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("nothing within %s", within)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
