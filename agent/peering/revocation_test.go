package peering

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/internal/backoff"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// bufNet holds the in-memory listeners of bufAgents, by environment.
type bufNet struct {
	mu  sync.Mutex
	lis map[string]*bufconn.Listener
}

func (n *bufNet) dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.lis[addr]
	n.mu.Unlock()
	return l.DialContext(ctx)
}

// bufAgent is one agent over bufconn: identity (on a fake clock), trust, Manager checking its
// streams' certificates on the same clock, gRPC server with mTLS, Dialer.
type bufAgent struct {
	env   string
	id    *identity.Identity
	trust *identitytest.Trust
	h     *fakeHandler
	peers *PeerSet
	m     *Manager
	logs  *testenv.LogBuffer
}

type bufOptions struct {
	leaf time.Duration
	// noCreds runs the Manager without Credentials: no re-verification and no renewal of
	// dialed streams, as an agent of release 0.1.0; the peer certificate's expiry still holds.
	noCreds bool
}

func newBufAgent(t *testing.T, n *bufNet, env string, clock backoff.Clock, o bufOptions) *bufAgent {
	t.Helper()
	if o.leaf == 0 {
		o.leaf = 3 * time.Minute
	}
	id, err := identity.New(identity.Config{
		Environment: env, Namespace: "ecklink", Client: fake.NewClientset(), Endpoints: []string{"127.0.0.1:1"},
		CAValidity: 90 * time.Minute, LeafValidity: o.leaf, Overlap: 10 * time.Minute, Clock: clock, GatePoll: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := id.Init(ctx); err != nil {
		t.Fatal(err)
	}
	a := &bufAgent{env: env, id: id, trust: &identitytest.Trust{}, h: newFakeHandler(), peers: NewPeerSet(), logs: &testenv.LogBuffer{}}
	cfg := testManagerConfig(env, a.h)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: env, Level: hclog.Debug, Output: a.logs})
	cfg.Clock = clock
	if !o.noCreds {
		cfg.Credentials = id.StreamChecker(a.trust)
	}
	if a.m, err = NewManager(cfg); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Manager: a.m})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(id.ServerTLSConfig(a.trust))))
	peerv1.RegisterPeerServiceServer(g, srv)
	lis := bufconn.Listen(1 << 20)
	n.mu.Lock()
	n.lis[env] = lis
	n.mu.Unlock()
	d, err := NewDialer(DialerConfig{
		Manager: a.m, Peers: a.peers, ContextDialer: n.dial,
		TLSConfig: func(env string) *tls.Config { return id.ClientTLSConfig(a.trust, env) },
		Backoff:   backoff.Config{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = id.Run(ctx) })
	wg.Go(func() { _ = g.Serve(lis) })
	wg.Go(func() { _ = d.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		g.Stop()
		wg.Wait()
	})
	return a
}

// pairBuf makes a and b trust each other's CAs and a dial b.
func pairBuf(a, b *bufAgent) {
	a.trust.Set(b.env, b.id.CACertificates())
	b.trust.Set(a.env, a.id.CACertificates())
	a.peers.Set(PeerInfo{Environment: b.env, Endpoints: []string{"passthrough:///" + b.env}, Dial: true})
}

func (a *bufAgent) session(peer string) SessionInfo {
	for _, s := range a.m.Sessions() {
		if s.Peer == peer {
			return s
		}
	}
	return SessionInfo{}
}

func (a *bufAgent) disconnects() int {
	n := 0
	a.h.get(func(h *fakeHandler) bool { n = h.disconnected; return true })
	return n
}

func newBufPair(t *testing.T, westOpts, eastOpts bufOptions) (west, east *bufAgent, clock *backoff.FakeClock) {
	t.Helper()
	clock = backoff.NewFakeClock(time.Now())
	n := &bufNet{lis: map[string]*bufconn.Listener{}}
	west, east = newBufAgent(t, n, "west", clock, westOpts), newBufAgent(t, n, "east", clock, eastOpts)
	pairBuf(west, east)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("west:\n%s\neast:\n%s", west.logs.String(), east.logs.String())
		}
	})
	waitFor(t, "connected", wait, func() bool { return east.session("west").Connected && west.session("east").Connected })
	return west, east, clock
}

// advanceTo moves the fake clock to at (identity renewals and stream checks fire), in steps
// that let each side act on what is due.
func advanceTo(clock *backoff.FakeClock, at time.Time) {
	for d := at.Sub(clock.Now()); d > 0; d = at.Sub(clock.Now()) {
		clock.Advance(min(d, 10*time.Second))
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveStreamRevocation: streams over mTLS (bufconn) are held to the certificates they were
// opened with, and renewals replace them without a disconnection.
func TestLiveStreamRevocation(t *testing.T) {
	t.Run("a CA dropped from the peer's trust ends its stream at once", func(t *testing.T) {
		west, east, _ := newBufPair(t, bufOptions{}, bufOptions{})
		other, err := identity.New(identity.Config{Environment: "west", Namespace: "x", Client: fake.NewClientset()})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		east.trust.Set("west", other.CACertificates())
		start := time.Now()
		east.m.Recheck("west")
		waitFor(t, "east ended the stream", wait, func() bool { return !east.session("west").Connected })
		t.Logf("stream ended %s after the recheck", time.Since(start).Round(time.Millisecond))
		if log := east.logs.String(); !strings.Contains(log, "stream ended: the peer's certificate is no longer valid") || !strings.Contains(log, "failed to verify the certificate of west again") {
			t.Fatalf("east's log does not name the reason:\n%s", log)
		}
		// West redials and is refused in the handshake while east does not trust its CA.
		time.Sleep(300 * time.Millisecond)
		if east.session("west").Connected {
			t.Fatal("east accepted west again")
		}
		east.trust.Set("west", west.id.CACertificates())
		waitFor(t, "connected again once trusted", wait, func() bool { return east.session("west").Connected })
	})

	t.Run("the server ends a stream at its client's leaf expiry", func(t *testing.T) {
		// West does not replace its stream (as an agent of release 0.1.0); east's leaf outlives west's.
		west, east, clock := newBufPair(t, bufOptions{noCreds: true}, bufOptions{leaf: 30 * time.Minute})
		first := east.session("west").PeerCertificate
		advanceTo(clock, first.NotAfter.Add(time.Second))
		waitFor(t, "west reconnected with its renewed leaf", wait, func() bool {
			s := east.session("west")
			return s.Connected && s.PeerCertificate.SerialNumber.Cmp(first.SerialNumber) != 0
		})
		if log := east.logs.String(); !strings.Contains(log, "stream ended: the peer's certificate is no longer valid") || !strings.Contains(log, "it expired at") {
			t.Fatalf("east's log does not say the client's certificate expired:\n%s", east.logs.String())
		}
		if west.disconnects() == 0 {
			t.Fatal("west saw no disconnection: the stream was not ended")
		}
	})

	t.Run("leaf renewals replace the stream without a disconnection", func(t *testing.T) {
		west, east, clock := newBufPair(t, bufOptions{}, bufOptions{})
		for round := range 3 {
			before := east.session("west")
			// Past 4/5 of the leaves' life: both renewed at 2/3, west replaces its stream.
			advanceTo(clock, before.PeerCertificate.NotAfter.Add(-30*time.Second))
			waitFor(t, "the stream replaced with the renewed leaves", wait, func() bool {
				s, w := east.session("west"), west.session("east")
				return s.Connected && s.PeerCertificate.SerialNumber.Cmp(west.id.Leaf().SerialNumber) == 0 &&
					w.PeerCertificate.SerialNumber.Cmp(east.id.Leaf().SerialNumber) == 0
			})
			if !east.session("west").Since.After(before.Since) {
				t.Fatalf("round %d: the stream was not replaced", round)
			}
		}
		if d := east.disconnects() + west.disconnects(); d != 0 {
			t.Fatalf("%d disconnections reported during renewals", d)
		}
		if strings.Contains(east.logs.String(), "stream closed") || strings.Contains(west.logs.String(), "stream closed") {
			t.Fatalf("a stream closed during renewals:\n%s\n%s", east.logs.String(), west.logs.String())
		}
	})

	t.Run("a CA promoted by the dialing side: its stream moves to the new CA", func(t *testing.T) {
		west, east, _ := newBufPair(t, bufOptions{}, bufOptions{})
		ctx := context.Background()
		if err := west.id.StageNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		east.trust.Set("west", west.id.CACertificates()) // the trust exchange's part
		if err := west.id.PromoteNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		newCA := west.id.CACertificates()[0]
		west.m.RecheckAll()
		waitFor(t, "east sees a leaf of the new CA", wait, func() bool {
			s := east.session("west")
			return s.Connected && s.PeerCertificate.CheckSignatureFrom(newCA) == nil
		})
		// Retiring the old CA now leaves the stream in place.
		east.trust.Set("west", []*x509.Certificate{newCA})
		east.m.Recheck("west")
		time.Sleep(200 * time.Millisecond)
		if !east.session("west").Connected || east.disconnects()+west.disconnects() != 0 {
			t.Fatal("the stream dropped during the rotation")
		}
	})

	t.Run("a CA promoted by the dialed side: the dialer moves when its trust says so", func(t *testing.T) {
		west, east, _ := newBufPair(t, bufOptions{}, bufOptions{})
		ctx := context.Background()
		if err := east.id.StageNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		west.trust.Set("east", east.id.CACertificates())
		if err := east.id.PromoteNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		newCA := east.id.CACertificates()[0]
		west.trust.Set("east", east.id.CACertificates()) // new first: east announced its promotion
		west.m.Recheck("east")
		waitFor(t, "west sees a leaf of east's new CA", wait, func() bool {
			s := west.session("east")
			return s.Connected && s.PeerCertificate.CheckSignatureFrom(newCA) == nil
		})
		if east.disconnects()+west.disconnects() != 0 {
			t.Fatal("the stream dropped during the rotation")
		}
	})

	t.Run("a replacement the peer refuses leaves the current stream serving", func(t *testing.T) {
		west, east, _ := newBufPair(t, bufOptions{}, bufOptions{})
		since := east.session("west").Since
		trusted := west.id.CACertificates()
		ctx := context.Background()
		// West promotes a CA east has not heard of: its new connection is refused.
		if err := west.id.StageNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		if err := west.id.PromoteNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		west.m.RecheckAll()
		waitFor(t, "a refused replacement", wait, func() bool {
			return strings.Contains(west.logs.String(), "failed to open a stream to replace the current one")
		})
		if s := east.session("west"); !s.Connected || !s.Since.Equal(since) || east.disconnects()+west.disconnects() != 0 {
			t.Fatalf("the current stream did not keep serving: %+v", s)
		}
		// Once east trusts the new CA, the retry takes over.
		east.trust.Set("west", append(trusted, west.id.CACertificates()[0]))
		waitFor(t, "the retried replacement took over", 3*wait, func() bool { return east.session("west").Since.After(since) })
	})
}

// TestRenewalsOnTheWallClock: with the wall clock, whose certificate times are whole seconds,
// short leaves (10s, renewed every ~7s) are replaced before they expire, stream after stream,
// without a disconnection.
func TestRenewalsOnTheWallClock(t *testing.T) {
	n := &bufNet{lis: map[string]*bufconn.Listener{}}
	west, east := newBufAgent(t, n, "west", backoff.RealClock, bufOptions{leaf: 10 * time.Second}), newBufAgent(t, n, "east", backoff.RealClock, bufOptions{leaf: 10 * time.Second})
	pairBuf(west, east)
	waitFor(t, "connected", wait, func() bool { return east.session("west").Connected && west.session("east").Connected })
	first := east.session("west").PeerCertificate
	time.Sleep(time.Until(first.NotAfter.Add(8 * time.Second)))
	if s := east.session("west"); !s.Connected || !s.PeerCertificate.NotBefore.After(first.NotAfter.Add(-10*time.Second)) {
		t.Fatalf("the stream is not on a leaf issued after the first expired: %+v", s)
	}
	if d := east.disconnects() + west.disconnects(); d != 0 {
		t.Fatalf("%d disconnections:\nwest:\n%s\neast:\n%s", d, west.logs.String(), east.logs.String())
	}
	t.Logf("%d replacements", strings.Count(east.logs.String(), "stream replaced by a newer one"))
}
