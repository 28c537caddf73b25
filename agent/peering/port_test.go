package peering

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/internal/backoff"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// countingPairer answers Pair and counts the calls that reached it.
type countingPairer struct{ calls atomic.Int32 }

func (p *countingPairer) Pair(context.Context, *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	p.calls.Add(1)
	return &peerv1.PairResponse{Identity: &peerv1.AgentIdentity{Environment: "east"}}, nil
}

// portMetrics records refusals by reason.
type portMetrics struct{ testenv.Counts }

func (m *portMetrics) PortRefused(reason string) { m.Add(reason) }

// testPort is east's port with pairing enabled (a client certificate is optional), trusting west.
type testPort struct {
	east, west *testAgent
	addr       string
	pairer     *countingPairer
	metrics    *portMetrics
	logs       *testenv.LogBuffer
	// authenticated is the environment of the last Sync the server authenticated.
	authenticated atomic.Pointer[string]
}

func newTestPort(t *testing.T, limits PortLimits) *testPort {
	t.Helper()
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	east.trust.Set("west", west.id.CACertificates())
	west.trust.Set("east", east.id.CACertificates())
	p := &testPort{east: east, west: west, pairer: &countingPairer{}, metrics: &portMetrics{}, logs: &testenv.LogBuffer{}}
	srv, err := NewServer(ServerConfig{Manager: east.m, Pairer: p.pairer, Authenticate: func(ctx context.Context) (string, error) {
		env, err := east.id.AuthenticatePeer(ctx, east.trust)
		if err == nil {
			p.authenticated.Store(&env)
			err = errors.New("authenticated; the test ends the stream here")
		}
		return "", err
	}})
	if err != nil {
		t.Fatal(err)
	}
	port, err := NewPort(PortConfig{
		TLS: east.id.ServerTLSConfigWithPairing(east.trust), Server: srv, Limits: limits, Metrics: p.metrics,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: p.logs}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	p.addr, stop = startPort(t, port)
	t.Cleanup(stop)
	return p
}

// startPort serves port on a free loopback port until stop is called.
func startPort(t *testing.T, port *Port) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = port.Serve(ctx, lis) }()
	return lis.Addr().String(), func() { cancel(); <-done }
}

// anonymousTLS is a joiner's TLS configuration: no client certificate.
func anonymousTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}, InsecureSkipVerify: true} //nolint:gosec // the server is not under test
}

func (p *testPort) client(t *testing.T, conf *tls.Config) (*grpc.ClientConn, peerv1.PeerServiceClient) {
	t.Helper()
	cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, peerv1.NewPeerServiceClient(cc)
}

func TestPortSplitsByCertificate(t *testing.T) {
	p := newTestPort(t, PortLimits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	syncErr := func(c peerv1.PeerServiceClient) error {
		stream, err := c.Sync(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	_, anon := p.client(t, anonymousTLS())
	_, paired := p.client(t, p.west.id.ClientTLSConfig(p.west.trust, "east"))
	tests := []struct {
		name     string
		call     func() error
		code     codes.Code
		message  string
		pairs    int32
		authedAs string
	}{
		{name: "anonymous Pair reaches the pairer", call: func() error { _, err := anon.Pair(ctx, &peerv1.PairRequest{}); return err }, code: codes.OK, pairs: 1},
		{name: "anonymous Sync is refused before anything is read", call: func() error { return syncErr(anon) }, code: codes.Unauthenticated, message: "client certificate of a paired agent is required"},
		{name: "a paired agent's Sync is authenticated as it", call: func() error { return syncErr(paired) }, code: codes.Unauthenticated, message: "the test ends the stream here", authedAs: "west"},
		{name: "a paired agent cannot Pair", call: func() error { _, err := paired.Pair(ctx, &peerv1.PairRequest{}); return err }, code: codes.FailedPrecondition, message: "only to clients without a certificate"},
		{name: "anonymous Pair of 8 MiB is refused unread", call: func() error {
			_, err := anon.Pair(ctx, &peerv1.PairRequest{TokenSecret: strings.Repeat("x", 8<<20)})
			return err
		}, code: codes.ResourceExhausted, message: "larger than max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.pairer.calls.Load()
			p.authenticated.Store(nil)
			err := tt.call()
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.message) {
				t.Fatalf("error = %v, want %s with %q", err, tt.code, tt.message)
			}
			if got := p.pairer.calls.Load() - before; got != tt.pairs {
				t.Fatalf("%d calls reached the pairer, want %d", got, tt.pairs)
			}
			if env := p.authenticated.Load(); tt.authedAs != "" && (env == nil || *env != tt.authedAs) {
				t.Fatalf("authenticated %v, want %s", env, tt.authedAs)
			}
		})
	}
}

func TestPortRateLimitsPairPerSource(t *testing.T) {
	p := newTestPort(t, PortLimits{PairRate: 0.01, PairBurst: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, anon := p.client(t, anonymousTLS())
	codesSeen := map[codes.Code]int{}
	var last error
	for range 50 {
		_, err := anon.Pair(ctx, &peerv1.PairRequest{})
		codesSeen[status.Code(err)]++
		if err != nil {
			last = err
		}
	}
	if codesSeen[codes.OK] != 3 || codesSeen[codes.ResourceExhausted] != 47 || p.pairer.calls.Load() != 3 {
		t.Fatalf("answers %v, %d calls reached the pairer; want 3 OK then ResourceExhausted", codesSeen, p.pairer.calls.Load())
	}
	if !strings.Contains(last.Error(), "too many pairing attempts from 127.0.0.1; retry in") {
		t.Fatalf("refusal = %v", last)
	}
	// 47 refusals, one log line: floods do not fill the log.
	if n := strings.Count(p.logs.String(), "refused an anonymous client"); n != 1 {
		t.Fatalf("%d log lines for 47 refusals, want 1:\n%s", n, p.logs.String())
	}
	if p.metrics.Get(refusedRateLimited) != 47 {
		t.Fatalf("metric counted %d rate-limited calls, want 47", p.metrics.Get(refusedRateLimited))
	}
}

// rawTLS opens a TLS connection and reports whether the server keeps it open (nothing to read
// within wait) or closes it.
func rawTLS(t *testing.T, addr string, conf *tls.Config, wait time.Duration) (net.Conn, bool) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, false
	}
	t.Cleanup(func() { c.Close() })
	return c, keptOpen(c, wait)
}

// keptOpen reads from c until wait: the server's HTTP/2 settings are fine, an EOF or reset
// means the server closed the connection.
func keptOpen(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.As(err, &ne) && ne.Timeout():
			return true
		default:
			return false
		}
	}
}

func TestPortBoundsConnections(t *testing.T) {
	t.Run("anonymous connections beyond the caps are closed, peers still connect", func(t *testing.T) {
		p := newTestPort(t, PortLimits{MaxAnonymous: 3, MaxAnonymousPerSource: 2})
		var kept int
		for range 5 {
			if _, open := rawTLS(t, p.addr, anonymousTLS(), 300*time.Millisecond); open {
				kept++
			}
		}
		if kept != 2 {
			t.Fatalf("%d anonymous connections from one source kept open, want 2", kept)
		}
		if p.metrics.Get(refusedSourceCapacity) != 3 {
			t.Fatalf("source_capacity refusals = %d, want 3", p.metrics.Get(refusedSourceCapacity))
		}
		paired := p.west.id.ClientTLSConfig(p.west.trust, "east")
		paired.NextProtos = []string{"h2"}
		if _, open := rawTLS(t, p.addr, paired, 300*time.Millisecond); !open {
			t.Fatal("a paired agent's connection was closed")
		}
	})
	t.Run("handshakes have a deadline", func(t *testing.T) {
		p := newTestPort(t, PortLimits{HandshakeTimeout: 300 * time.Millisecond})
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if keptOpen(c, 5*time.Second) {
			t.Fatal("a connection that never handshakes is kept open")
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("closed after %s, want about the handshake timeout", took)
		}
		waitFor(t, "the refusal counted", wait, func() bool { return p.metrics.Get(refusedHandshake) == 1 })
	})
	t.Run("handshakes in progress are bounded", func(t *testing.T) {
		p := newTestPort(t, PortLimits{MaxHandshakes: 2, HandshakeTimeout: 10 * time.Second})
		for range 2 {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if keptOpen(c, 2*time.Second) {
			t.Fatal("a third silent connection is kept while two handshakes are in progress")
		}
		waitFor(t, "the refusal counted", wait, func() bool { return p.metrics.Get(refusedHandshakeCapacity) == 1 })
	})
	t.Run("clients that do not speak HTTP/2 are closed", func(t *testing.T) {
		p := newTestPort(t, PortLimits{})
		conf := anonymousTLS()
		conf.NextProtos = nil
		if _, open := rawTLS(t, p.addr, conf, 300*time.Millisecond); open {
			t.Fatal("a connection without ALPN h2 is kept open")
		}
	})
	t.Run("idle anonymous connections are closed", func(t *testing.T) {
		p := newTestPort(t, PortLimits{AnonymousIdle: 300 * time.Millisecond})
		cc, anon := p.client(t, anonymousTLS())
		if _, err := anon.Pair(context.Background(), &peerv1.PairRequest{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the server closed the idle connection", wait, func() bool {
			s := cc.GetState()
			return s == connectivity.Idle || s == connectivity.TransientFailure
		})
	})
}

func TestPortLogsClipped(t *testing.T) {
	p := newTestPort(t, PortLimits{HandshakeTimeout: time.Second})
	// A client that sends a huge garbage first record: the handshake error must not carry it.
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(append([]byte{0x16, 0x03, 0x01, 0x40, 0x00}, bytes.Repeat([]byte("A"), 16<<10)...))
	_, _ = io.Copy(io.Discard, c)
	waitFor(t, "the refusal logged", wait, func() bool { return strings.Contains(p.logs.String(), "refused a connection") })
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if len(line) > 1024 {
			t.Fatalf("log line of %d bytes", len(line))
		}
	}
}

// blockingPairer holds every Pair call until release is closed, counting those in flight.
type blockingPairer struct {
	release        chan struct{}
	inFlight, peak atomic.Int32
}

func (p *blockingPairer) Pair(ctx context.Context, _ *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		peak := p.peak.Load()
		if n <= peak || p.peak.CompareAndSwap(peak, n) {
			break
		}
	}
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	return &peerv1.PairResponse{}, nil
}

func TestPortBoundsCallsPerAnonymousConnection(t *testing.T) {
	east := newAgent(t, "east", backoff.RealClock)
	pairer := &blockingPairer{release: make(chan struct{})}
	srv, err := NewServer(ServerConfig{Manager: east.m, Pairer: pairer})
	if err != nil {
		t.Fatal(err)
	}
	port, err := NewPort(PortConfig{TLS: east.id.ServerTLSConfigWithPairing(east.trust), Server: srv, Limits: PortLimits{PairBurst: 100}})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := startPort(t, port)
	defer stop()
	ctx := context.Background()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(anonymousTLS())))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := peerv1.NewPeerServiceClient(cc)
	var wg sync.WaitGroup
	for range 2 * anonMaxStreams {
		wg.Go(func() { _, _ = client.Pair(ctx, &peerv1.PairRequest{}) })
	}
	waitFor(t, "calls in flight", wait, func() bool { return pairer.inFlight.Load() == anonMaxStreams })
	time.Sleep(300 * time.Millisecond) // room for a call beyond the bound to arrive
	if peak := pairer.peak.Load(); peak != anonMaxStreams {
		t.Fatalf("%d calls in flight on one anonymous connection, want at most %d", peak, anonMaxStreams)
	}
	close(pairer.release)
	wg.Wait()
}
