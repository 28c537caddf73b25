package peering

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	ibackoff "github.com/ecklink/ecklink/internal/backoff"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// PeerInfo is what the Dialer needs to know about a peer.
type PeerInfo struct {
	Environment string
	// Endpoints are host:port addresses, tried in order.
	Endpoints []string
	// Dial says this agent opens the stream; otherwise the peer does.
	Dial bool
}

// PeerSource lists the peers and tells when the list changes.
type PeerSource interface {
	Peers() []PeerInfo
	// Changed receives a value (coalesced) after the list changed.
	Changed() <-chan struct{}
}

// PeerSet is a PeerSource kept in memory; safe for concurrent use.
type PeerSet struct {
	mu      sync.Mutex
	peers   map[string]PeerInfo
	changed chan struct{}
}

// NewPeerSet returns a PeerSet holding peers.
func NewPeerSet(peers ...PeerInfo) *PeerSet {
	s := &PeerSet{peers: map[string]PeerInfo{}, changed: make(chan struct{}, 1)}
	for _, p := range peers {
		s.peers[p.Environment] = p
	}
	return s
}

// Set adds or replaces a peer.
func (s *PeerSet) Set(p PeerInfo) {
	s.mu.Lock()
	s.peers[p.Environment] = p
	s.mu.Unlock()
	s.notify()
}

// Delete removes a peer.
func (s *PeerSet) Delete(env string) {
	s.mu.Lock()
	delete(s.peers, env)
	s.mu.Unlock()
	s.notify()
}

// Peers lists the peers, sorted by environment.
func (s *PeerSet) Peers() []PeerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerInfo, 0, len(s.peers))
	for _, k := range slices.Sorted(maps.Keys(s.peers)) {
		out = append(out, s.peers[k])
	}
	return out
}

// Changed implements PeerSource.
func (s *PeerSet) Changed() <-chan struct{} { return s.changed }

func (s *PeerSet) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// DialerConfig configures a Dialer.
type DialerConfig struct {
	// Manager runs the sessions (required).
	Manager *Manager
	// Peers lists whom to dial (required); only peers with Dial set are dialed.
	Peers PeerSource
	// TLSConfig returns the client TLS configuration for a peer environment, normally
	// identity.ClientTLSConfig(trust, env) (required).
	TLSConfig func(environment string) *tls.Config
	// Backoff tunes reconnection delays (default 500ms doubling to 1m, with jitter).
	Backoff ibackoff.Config
	// Clock drives reconnection delays (default the wall clock).
	Clock ibackoff.Clock
	// DialTimeout bounds each connection attempt (default 10s).
	DialTimeout time.Duration
	// Logger receives the dialer's logs (default: the Manager's).
	Logger hclog.Logger
	// ContextDialer, when set, opens the connections (tests: in-memory listeners).
	ContextDialer func(ctx context.Context, addr string) (net.Conn, error)
}

// Dialer keeps exactly one stream open to every peer this agent dials.
type Dialer struct {
	cfg DialerConfig
	log hclog.Logger
}

// NewDialer returns a Dialer for cfg.
func NewDialer(cfg DialerConfig) (*Dialer, error) {
	switch {
	case cfg.Manager == nil:
		return nil, fmt.Errorf("failed to create dialer: manager: a Manager is required")
	case cfg.Peers == nil:
		return nil, fmt.Errorf("failed to create dialer: peers: a PeerSource is required")
	case cfg.TLSConfig == nil:
		return nil, fmt.Errorf("failed to create dialer: tlsConfig: a TLS configuration function is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = ibackoff.RealClock
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.Manager.log
	}
	return &Dialer{cfg: cfg, log: log.Named("dialer")}, nil
}

type dialTask struct {
	env    string
	info   PeerInfo // owned by Run
	cancel context.CancelFunc
	done   chan struct{}
	// endpoints follow the peer's current list without ending a live stream (see Run).
	endpoints atomic.Pointer[[]string]
	// lastGood is the endpoint of the last stream that opened; it is tried first.
	lastGood atomic.Pointer[string]
}

// Run dials until ctx ends, following changes of the peer list. It returns nil when ctx ends.
func (d *Dialer) Run(ctx context.Context) error {
	tasks := map[string]*dialTask{}
	defer func() {
		for _, t := range tasks {
			t.cancel()
			<-t.done
		}
	}()
	for {
		want := map[string]PeerInfo{}
		for _, p := range d.cfg.Peers.Peers() {
			if p.Dial && len(p.Endpoints) > 0 {
				want[p.Environment] = p
			}
		}
		for env, t := range tasks {
			p, ok := want[env]
			switch {
			case ok && samePeer(p, t.info):
			case ok && p.Dial == t.info.Dial && d.liveEndpoint(env) == p.Endpoints[0]:
				// Only the endpoints changed and the stream already uses the preferred one:
				// it stays, and the next connection attempt uses the new list. Otherwise the
				// task starts over, so the stream moves to where the peer now says it is.
				t.info = p
				t.setEndpoints(p.Endpoints)
			default:
				t.cancel()
				<-t.done
				delete(tasks, env)
			}
		}
		for env, p := range want {
			if _, ok := tasks[env]; !ok {
				tasks[env] = d.start(ctx, p)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.cfg.Peers.Changed():
		}
	}
}

func samePeer(a, b PeerInfo) bool {
	return a.Environment == b.Environment && a.Dial == b.Dial && slices.Equal(a.Endpoints, b.Endpoints)
}

func (d *Dialer) start(ctx context.Context, p PeerInfo) *dialTask {
	ctx, cancel := context.WithCancel(ctx)
	t := &dialTask{env: p.Environment, info: p, cancel: cancel, done: make(chan struct{})}
	t.setEndpoints(p.Endpoints)
	log := d.log.With(logPeer, p.Environment)
	go func() {
		defer close(t.done)
		b := ibackoff.New(d.cfg.Backoff, d.cfg.Clock)
		err := ibackoff.Retry(ctx, b, func(ctx context.Context) error {
			return d.connect(ctx, t, b)
		}, func(err error, delay time.Duration) {
			log.Warn("stream to peer ended", logError, err, logRetryIn, delay)
		})
		if err != nil && ctx.Err() == nil {
			log.Info("stopped dialing peer", logError, err)
		}
	}()
	return t
}

// connect tries the endpoints in order and runs a session on the first that accepts one. The
// returned error is classified for the retry loop: a session that opened and then dropped is
// retried soon (and resets the backoff), a terminated peering is given up, anything else is
// retried later.
func (d *Dialer) connect(ctx context.Context, t *dialTask, b *ibackoff.Backoff) error {
	env := t.env
	var errs []error
	for _, ep := range t.order() {
		d.cfg.Manager.noteDialing(env, ep)
		opened, err := d.session(ctx, env, ep)
		if opened {
			t.lastGood.Store(&ep)
		}
		switch {
		case errors.Is(err, ErrTerminated), errors.Is(err, ErrPeerTerminated):
			return ibackoff.GiveUp(err)
		case opened:
			b.Reset()
			return ibackoff.RetrySoon(fmt.Errorf("endpoint %s: %w", ep, err))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("endpoint %s: %w", ep, err))
	}
	err := fmt.Errorf("failed to connect to peer %q: %w", env, errors.Join(errs...))
	d.cfg.Manager.noteDialFailure(env, err)
	return ibackoff.RetryLater(err)
}

func (t *dialTask) setEndpoints(eps []string) {
	c := slices.Clone(eps)
	t.endpoints.Store(&c)
}

// liveEndpoint is the endpoint of the stream with env, when this agent dialed it and it is up.
func (d *Dialer) liveEndpoint(env string) string {
	if info := d.cfg.Manager.peer(env).sessionInfo(); info.Connected && info.Dialed {
		return info.Endpoint
	}
	return ""
}

// order is the endpoints to try: the one of this task's last stream that opened first (it
// worked), then the peer's current list in its order. A new task (the preferred endpoint
// changed) starts with the list's order.
func (t *dialTask) order() []string {
	eps, good := *t.endpoints.Load(), ""
	if p := t.lastGood.Load(); p != nil {
		good = *p
	}
	if good == "" || !slices.Contains(eps, good) {
		return eps
	}
	return append([]string{good}, slices.DeleteFunc(slices.Clone(eps), func(e string) bool { return e == good })...)
}

// session runs streams over one endpoint until the stream ends for good. When the current
// stream is due for renewal (a leaf nears its expiry, a CA was rotated: Credentials.RenewAt), a
// new connection opens next to it and takes over once the peer accepted it, so that renewals
// never disconnect the peers; a replacement that fails leaves the current stream serving and is
// tried again later.
func (d *Dialer) session(ctx context.Context, env, endpoint string) (bool, error) {
	log := d.log.With(logPeer, env, logEndpoint, endpoint)
	cur := d.dial(ctx, env, endpoint, nil)
	var next *dialed
	var retry <-chan time.Time
	again := ibackoff.New(ibackoff.Config{Initial: time.Second, Max: 30 * time.Second}, d.cfg.Clock)
	opened := false
	for {
		var nextDone <-chan struct{}
		if next != nil {
			nextDone = next.done
		}
		select {
		case <-cur.done:
			opened = opened || cur.opened
			if next != nil {
				<-next.h.done // it took over (cur then ended with ErrReplaced) or gave up
				if next.h.attached.Load() {
					cur, next, retry = next, nil, nil
					again.Reset()
					continue
				}
				<-next.done
			}
			return opened, cur.err
		case reason := <-cur.ctl.renew:
			log.Debug("opening a new stream to replace the current one", logReason, reason)
			next = d.dial(ctx, env, endpoint, cur)
		case <-nextDone:
			if next.h.attached.Load() {
				<-cur.done // replaced: it ends at once
				opened = opened || cur.opened
				cur, next, retry = next, nil, nil
				again.Reset()
				continue
			}
			delay := again.Next()
			log.Warn("failed to open a stream to replace the current one, which keeps serving", logError, next.err, logRetryIn, delay)
			next, retry = nil, d.cfg.Clock.After(delay)
		case <-retry:
			retry = nil
			next = d.dial(ctx, env, endpoint, cur)
		}
	}
}

// dialed is one stream of a Dialer, running in its own goroutine.
type dialed struct {
	ctl *dialControl
	// h is set on a stream that replaces another.
	h *handover
	// local and peer are the leaves of the handshake, once the stream is established.
	local, peer *x509.Certificate

	done   chan struct{}
	opened bool
	err    error
}

// dial starts a stream to endpoint; with prev set, the stream replaces prev once the peer
// accepted it.
func (d *Dialer) dial(ctx context.Context, env, endpoint string, prev *dialed) *dialed {
	ds := &dialed{ctl: newDialControl(), done: make(chan struct{})}
	if prev != nil {
		ds.h = newHandover()
		prev.ctl.successor.Store(ds.h)
	}
	go func() {
		defer close(ds.done)
		ds.opened, ds.err = d.stream(ctx, env, endpoint, ds, prev)
		if ds.h != nil {
			ds.h.finish(false) // no-op once it took over
		}
	}()
	return ds
}

// stream dials one endpoint and runs a session over it.
func (d *Dialer) stream(ctx context.Context, env, endpoint string, ds, prev *dialed) (bool, error) {
	size := d.cfg.Manager.MaxMessageBytes()
	tlsConf, presented := capturePresented(d.cfg.TLSConfig(env))
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(size), grpc.MaxCallSendMsgSize(size)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: d.cfg.DialTimeout}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	if d.cfg.ContextDialer != nil {
		opts = append(opts, grpc.WithContextDialer(d.cfg.ContextDialer))
	}
	conn, err := grpc.NewClient(endpoint, opts...)
	if err != nil {
		return false, fmt.Errorf("failed to create client: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := peerv1.NewPeerServiceClient(conn).Sync(ctx)
	if err != nil {
		return false, fmt.Errorf("failed to open stream: %w", err)
	}
	// The stream's context carries the verified handshake: the server's chain.
	chain := peerChain(stream.Context())
	ds.local = presented.Load()
	if len(chain) > 0 {
		ds.peer = chain[0]
	}
	// A replacement that got the very certificates of the stream it replaces cannot do better
	// by being replaced again (the peer has not renewed yet): it serves until they expire.
	if prev != nil && ds.local.Equal(prev.local) && ds.peer.Equal(prev.peer) {
		ds.ctl.renewable = false
	}
	d.log.Debug("stream dialed", logPeer, env, logEndpoint, endpoint)
	return d.cfg.Manager.serveWith(ctx, env, clientStream{s: stream}, sessionOptions{
		dialed: true, chain: chain, local: ds.local, ctl: ds.ctl, takeOver: ds.h,
	})
}

// capturePresented returns a copy of conf that records the client certificate it presents:
// the handshake's state holds only the peer's certificates.
func capturePresented(conf *tls.Config) (*tls.Config, *atomic.Pointer[x509.Certificate]) {
	presented := &atomic.Pointer[x509.Certificate]{}
	conf = conf.Clone()
	get := conf.GetClientCertificate
	if get == nil {
		return conf, presented
	}
	conf.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := get(cri)
		if err == nil && c != nil {
			leaf := c.Leaf
			if leaf == nil && len(c.Certificate) > 0 {
				leaf, _ = x509.ParseCertificate(c.Certificate[0])
			}
			presented.Store(leaf)
		}
		return c, err
	}
	return conf, presented
}
