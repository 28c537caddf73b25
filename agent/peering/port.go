package peering

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/ecklink/ecklink/internal/logging"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Defaults of PortLimits. Anonymous clients are joining agents: one Pair call each, a few
// kilobytes, once per pairing.
const (
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultMaxHandshakes         = 512
	DefaultMaxAnonymous          = 64
	DefaultMaxAnonymousPerSource = 8
	DefaultPairRate              = 1.0
	DefaultPairBurst             = 10
	DefaultMaxSources            = 4096
	DefaultAnonymousIdle         = 10 * time.Second
	DefaultAnonymousMaxAge       = 30 * time.Second

	// MaxPairMessageBytes bounds every message on an anonymous connection. A PairRequest holds
	// a token id and secret and the joiner's identity, whose CA bundle (at most three CAs) is a
	// few kilobytes.
	MaxPairMessageBytes = 64 << 10

	// pairTimeout bounds one Pair call (its Kubernetes writes included).
	pairTimeout = 20 * time.Second
	// peerMaxStreams bounds the streams of one peer connection: a peer holds one Sync stream.
	peerMaxStreams = 16
	// anonMaxStreams bounds the calls in flight on one anonymous connection.
	anonMaxStreams = 4
	// peerIdle closes peer connections that carry no stream for this long.
	peerIdle = 5 * time.Minute
	// refusalLogInterval is how often a refusal of one kind is logged during a flood.
	refusalLogInterval = 30 * time.Second
)

// Reasons the port refuses a connection or a call, as metric label values (a fixed set).
const (
	refusedHandshake         = "handshake_failed"
	refusedHandshakeCapacity = "handshake_capacity"
	refusedNoHTTP2           = "no_h2"
	refusedAnonymousCapacity = "anonymous_capacity"
	refusedSourceCapacity    = "source_capacity"
	refusedRateLimited       = "rate_limited"

	maxLoggedHandshakeErrSize = 256
)

// PortLimits bound what anonymous clients (and slow handshakes) can hold on the peer port. Zero
// values take the defaults above.
type PortLimits struct {
	// HandshakeTimeout bounds every TLS handshake.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds handshakes in progress; beyond it new connections are closed at once.
	MaxHandshakes int
	// MaxAnonymous bounds open connections without a client certificate, and
	// MaxAnonymousPerSource those from one source address (IPv4 address, IPv6 /64).
	MaxAnonymous, MaxAnonymousPerSource int
	// PairRate (per second) and PairBurst bound the Pair calls of one source address.
	PairRate  float64
	PairBurst int
	// MaxSources bounds the source addresses tracked for the two limits above.
	MaxSources int
	// AnonymousIdle closes an anonymous connection without a call in flight for this long, and
	// AnonymousMaxAge any anonymous connection after this long.
	AnonymousIdle, AnonymousMaxAge time.Duration
}

func (l *PortLimits) setDefaults() {
	orDefault(&l.MaxHandshakes, DefaultMaxHandshakes)
	orDefault(&l.MaxAnonymous, DefaultMaxAnonymous)
	orDefault(&l.MaxAnonymousPerSource, DefaultMaxAnonymousPerSource)
	orDefault(&l.PairBurst, DefaultPairBurst)
	orDefault(&l.MaxSources, DefaultMaxSources)
	orDefault(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&l.AnonymousIdle, DefaultAnonymousIdle)
	orDefault(&l.AnonymousMaxAge, DefaultAnonymousMaxAge)
	orDefault(&l.PairRate, DefaultPairRate)
	// The source table must always find a source without connections to forget.
	l.MaxSources = max(l.MaxSources, l.MaxAnonymous+1)
}

// PortMetrics counts what the port refuses; *metrics.Metrics implements it.
type PortMetrics interface {
	PortRefused(reason string)
}

// PortConfig configures a Port.
type PortConfig struct {
	// TLS is the server's TLS configuration: a client certificate is optional and verified when
	// presented (identity.ServerTLSConfigWithPairing). Required.
	TLS *tls.Config
	// Server answers Sync on connections with a client certificate and Pair on the others.
	// Required.
	Server *Server
	// Options are added to both gRPC servers, e.g. interceptors of the standby gate; they run
	// before the port's own.
	Options []grpc.ServerOption
	Limits  PortLimits
	// StopGrace is how long Serve lets calls in flight finish once ctx ended, before it closes
	// every connection (default 5s).
	StopGrace time.Duration
	Metrics   PortMetrics
	// Logger defaults to the Server's.
	Logger hclog.Logger
	// Now is the rate limiter's clock (default time.Now).
	Now func() time.Time
}

// Port serves the agent's one peer port (see the package documentation): it runs the TLS
// handshakes itself, then hands connections with a verified client certificate to the peer gRPC
// server and the others to a small anonymous gRPC server that answers only Pair.
type Port struct {
	cfg        PortConfig
	tls        *tls.Config
	peer, anon *grpc.Server
	sources    *sourceTable
	handshakes chan struct{}
	log        hclog.Logger
	throttle   *logging.Throttle
}

// NewPort checks cfg and builds the two gRPC servers.
func NewPort(cfg PortConfig) (*Port, error) {
	if cfg.TLS == nil || cfg.Server == nil {
		return nil, fmt.Errorf("failed to create peer port: TLS and Server are required")
	}
	cfg.Limits.setDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Server.log
	}
	conf := cfg.TLS.Clone()
	// gRPC clients require HTTP/2 by ALPN; gRPC's own TLS credentials would add it.
	if !slices.Contains(conf.NextProtos, "h2") {
		conf.NextProtos = append(conf.NextProtos, "h2")
	}
	p := &Port{
		cfg: cfg, tls: conf, sources: newSourceTable(cfg.Limits),
		handshakes: make(chan struct{}, cfg.Limits.MaxHandshakes),
		log:        cfg.Logger.Named("port"), throttle: logging.NewThrottle(refusalLogInterval, cfg.Now),
	}
	maxMessage := cfg.Server.m.MaxMessageBytes()
	p.peer = grpc.NewServer(append(slices.Clone(cfg.Options), append(PeerServerOptions(maxMessage), grpc.Creds(handshaken{}))...)...)
	peerv1.RegisterPeerServiceServer(p.peer, syncOnly{cfg.Server})
	p.anon = grpc.NewServer(append(slices.Clone(cfg.Options), p.anonymousOptions()...)...)
	peerv1.RegisterPeerServiceServer(p.anon, pairOnly{cfg.Server})
	return p, nil
}

// PeerServerOptions are the gRPC server options of connections from paired peers, without
// transport credentials (the Port runs the handshake): the message size limit for updates, a bound on streams per connection,
// keepalives that find dead connections even when the application is idle (and refuse clients
// that ping too often), and the closing of connections that carry no stream.
func PeerServerOptions(maxMessageBytes int) []grpc.ServerOption {
	if maxMessageBytes <= 0 {
		maxMessageBytes = DefaultMaxMessageBytes
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.MaxConcurrentStreams(peerMaxStreams),
		grpc.MaxHeaderListSize(64 << 10),
		grpc.ConnectionTimeout(DefaultHandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: peerIdle}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// anonymousOptions bound what one anonymous connection can make the agent hold: messages of a
// Pair request's size, fixed flow-control windows (no growth to megabytes), small buffers and
// headers, few calls in flight, and a short life.
func (p *Port) anonymousOptions() []grpc.ServerOption {
	l := p.cfg.Limits
	return []grpc.ServerOption{
		grpc.Creds(handshaken{}),
		grpc.MaxRecvMsgSize(MaxPairMessageBytes),
		grpc.MaxSendMsgSize(MaxPairMessageBytes),
		grpc.MaxConcurrentStreams(anonMaxStreams),
		grpc.MaxHeaderListSize(16 << 10),
		grpc.InitialWindowSize(64 << 10),
		grpc.InitialConnWindowSize(64 << 10),
		grpc.ReadBufferSize(16 << 10),
		grpc.WriteBufferSize(16 << 10),
		grpc.ConnectionTimeout(l.HandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: l.AnonymousIdle, MaxConnectionAge: l.AnonymousMaxAge, MaxConnectionAgeGrace: 5 * time.Second,
			Time: l.AnonymousIdle, Timeout: 5 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.AnonymousIdle}),
		grpc.ChainUnaryInterceptor(p.limitPair),
	}
}

// limitPair applies the per-source rate limit and a deadline to every anonymous call.
func (p *Port) limitPair(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	src := "unknown"
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		src = sourceKey(pr.Addr)
	}
	if ok, wait := p.sources.allowPair(src, p.cfg.Now()); !ok {
		p.refused(refusedRateLimited, src, nil)
		return nil, toStatus(fmt.Errorf("%w: too many pairing attempts from %s; retry in %s", ErrPairingRateLimited, src, wait.Round(100*time.Millisecond)))
	}
	ctx, cancel := context.WithTimeout(ctx, pairTimeout)
	defer cancel()
	return next(ctx, req)
}

// Serve accepts connections on lis until ctx ends, then closes lis and stops both servers
// (gracefully for up to StopGrace).
func (p *Port) Serve(ctx context.Context, lis net.Listener) error {
	peerQ, anonQ := newConnQueue(lis.Addr()), newConnQueue(lis.Addr())
	served := make(chan error, 2)
	go func() { served <- p.peer.Serve(peerQ) }()
	go func() { served <- p.anon.Serve(anonQ) }()
	acceptErr := make(chan error, 1)
	go func() { acceptErr <- p.accept(ctx, lis, peerQ, anonQ) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
	case err = <-served:
	}
	_ = lis.Close()
	p.stop()
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("failed to serve peers: %w", err)
	}
	return ctx.Err()
}

func (p *Port) stop() {
	stopped := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Go(p.peer.GracefulStop)
		wg.Go(p.anon.GracefulStop)
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(p.cfg.StopGrace):
		p.peer.Stop()
		p.anon.Stop()
	}
}

// accept runs the handshakes of new connections, at most MaxHandshakes at a time.
func (p *Port) accept(ctx context.Context, lis net.Listener, peerQ, anonQ *connQueue) error {
	var delay time.Duration
	for {
		raw, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait, as net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if ok, held := p.throttle.Allow("accept"); ok {
				p.log.Warn("failed to accept a connection, retrying", logError, err, logRetryIn, delay, logSuppressed, held)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		select {
		case p.handshakes <- struct{}{}:
			go p.handshake(ctx, raw, peerQ, anonQ)
		default:
			p.refused(refusedHandshakeCapacity, sourceKey(raw.RemoteAddr()), nil)
			_ = raw.Close()
		}
	}
}

// handshake completes the TLS handshake of raw within the timeout and hands the connection to
// the server for its kind.
func (p *Port) handshake(ctx context.Context, raw net.Conn, peerQ, anonQ *connQueue) {
	conn := tls.Server(raw, p.tls)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Limits.HandshakeTimeout)
	_ = conn.SetDeadline(time.Now().Add(p.cfg.Limits.HandshakeTimeout))
	err := conn.HandshakeContext(ctx)
	cancel()
	<-p.handshakes
	src := sourceKey(raw.RemoteAddr())
	if err != nil {
		p.refused(refusedHandshake, src, err)
		_ = conn.Close()
		return
	}
	state := conn.ConnectionState()
	if state.NegotiatedProtocol != "h2" {
		p.refused(refusedNoHTTP2, src, nil)
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if len(state.PeerCertificates) > 0 {
		// Verified in the handshake (VerifyConnection) against the current trust.
		if !peerQ.push(conn) {
			_ = conn.Close()
		}
		return
	}
	release, reason := p.sources.openConn(src, p.cfg.Now())
	if reason != "" {
		p.refused(reason, src, nil)
		_ = conn.Close()
		return
	}
	if !anonQ.push(&anonymousConn{Conn: conn, release: release}) {
		_ = conn.Close()
		release()
	}
}

// refused counts a refusal and logs it, at most once per interval and reason, with the number
// of the same refusals held back since: a flood costs a line per interval, not per attempt.
func (p *Port) refused(reason, src string, err error) {
	if m := p.cfg.Metrics; m != nil {
		m.PortRefused(reason)
	}
	ok, held := p.throttle.Allow(reason)
	if !ok {
		return
	}
	args := []any{logReason, reason, logSource, src, logSuppressed, held}
	if err != nil {
		args = append(args, logError, logging.Clip(err.Error(), maxLoggedHandshakeErrSize))
	}
	if reason == refusedHandshake {
		// Usually a port scanner or a peer whose certificate is no longer trusted; the Peer's
		// Connected condition says which peer is down.
		p.log.Info("refused a connection", args...)
		return
	}
	p.log.Warn("refused an anonymous client", args...)
}

// anonymousConn is a connection without a client certificate; Close releases its slot.
type anonymousConn struct {
	*tls.Conn
	release func()
}

func (c *anonymousConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// connQueue is a net.Listener whose connections come from the port's handshakes.
type connQueue struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to the server; false when the server stopped.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// handshaken are the transport credentials of connections whose TLS handshake the port already
// completed: they report its state, so that peer.FromContext and AuthenticatePeer see the
// verified client certificate exactly as with gRPC's own TLS credentials.
type handshaken struct{}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil, nil, fmt.Errorf("connection %T did not come from the peer port", c)
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("the peer port's credentials are for servers only")
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (h handshaken) Clone() credentials.TransportCredentials { return h }

func (handshaken) OverrideServerName(string) error { return nil }
