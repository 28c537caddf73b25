// Package peering is the stream layer between paired agents: one mutually authenticated
// bidirectional gRPC stream per peer (Sync), over which each side publishes resources with
// per-resource sequences, acknowledges or refuses what it receives, and exchanges heartbeats.
// What a resource carries is the application's (package protocol): this package moves updates
// by resource key and checks only what the transport needs (key syntax, the reserved inventory
// key, sizes, sequences).
//
// The Manager holds, per peer, an outbox (the latest content of every resource published to the
// peer) and a receiver record (the last sequence and content hash applied from the peer). The
// Server accepts streams, the Dialer opens them; both hand them to the Manager, which runs one
// session per peer: one receive goroutine feeding one select loop (Consul's peerstream design).
//
// Sizes: gRPC accepts messages up to Config.MaxMessageBytes (16 MiB by default) so that an
// oversized update still reaches validation and is refused with a Nack naming its size
// (MaxUpdateBytes for the whole update, pemutil limits for CA bundles) instead of breaking the
// stream with ResourceExhausted. A session holds at most 2 × MaxMessageBytes of received messages
// waiting for its loop (budget.go), so a peer cannot fill this agent's memory by flooding large
// messages while not reading the answers.
//
// The peer port (Port, port.go) is one TCP port for two kinds of clients: paired agents, with a
// client certificate, and joining agents, without one, that may only call Pair. gRPC's limits
// (message size, streams, flow-control windows, keepalive) apply per server, and 16 MiB messages
// for anonymous clients would let anyone who reaches the port make the agent allocate 16 MiB per
// call. So the Port runs the TLS handshake itself, with a deadline and a bound on handshakes in
// progress, and then splits: a connection whose certificate verified (during the handshake,
// against the current trust) goes to the peer server (Sync; the message size above, at most 16
// streams per connection, keepalive enforcement, idle connections closed after 5 minutes); a
// connection without a certificate goes to a small anonymous server that answers only Pair, with
// 64 KiB messages, fixed 64 KiB flow-control windows, 4 calls per connection, a short idle
// timeout and maximum age, at most MaxAnonymous such connections (and MaxAnonymousPerSource per
// source address), and a per-source rate limit on Pair calls kept in a bounded table of sources.
// Both servers keep gRPC's view of the handshake (credentials.TLSInfo), so authentication of
// streams is unchanged. Refusals are counted by reason and logged at most once per interval.
package peering

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/backoff"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// ProtocolVersion is the version of peer.proto this package speaks.
const ProtocolVersion = 1

// Defaults for Config.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultUpdateRate        = 50
	DefaultUpdateBurst       = 100
	DefaultResyncAllowance   = 2500
	DefaultResyncInterval    = time.Minute
	DefaultMaxInFlight       = 32
	DefaultMaxUpdateBytes    = 4 << 20
	DefaultMaxMessageBytes   = 16 << 20
	DefaultOpenTimeout       = 30 * time.Second
	DefaultRateLimitedRetry  = 2 * time.Second
	DefaultRecheckInterval   = time.Minute
	DefaultSendTimeout       = 45 * time.Second

	minReceiveTimeout = time.Second
	maxReceiveTimeout = 5 * time.Minute
)

// Config configures a Manager.
type Config struct {
	// Environment is this agent's environment name, sent in Open.
	Environment string
	// Version is this agent's version, sent in Open.
	Version string
	// Handler is the application (required).
	Handler Handler
	// Logger receives the stream logs (default a null logger).
	Logger hclog.Logger
	// HeartbeatInterval is how often heartbeats are sent; a peer drops the stream after 3
	// intervals without a message, bounded to [1s, 5m] (default 15s).
	HeartbeatInterval time.Duration
	// UpdateRate and UpdateBurst bound the updates a peer may send per second; updates above
	// are refused with Nack "RateLimited" unprocessed, and the sender retries them (default
	// 50/s, burst 100).
	UpdateRate  float64
	UpdateBurst int
	// ResyncAllowance is how many updates beyond UpdateBurst a peer may send at the start of a
	// session, at most once per ResyncInterval per peer (default 2,500, once a minute). When a
	// stream opens after either side restarted, the peer resends its current state, an update
	// per resource (two per link from a consuming agent: its import request and its status);
	// at 1,000 links the burst alone spread that over 40 s at 50/s, and the links waited for it.
	// The allowance is taken once and never refills; a peer that reconnects again within the
	// interval gets the burst only. Negative: none.
	ResyncAllowance int
	ResyncInterval  time.Duration
	// MaxInFlight bounds the updates sent but not yet acknowledged per session (default 32).
	// It also keeps both sides' receive queues from filling, so sends never wedge each other.
	MaxInFlight int
	// MaxUpdateBytes is the largest update applied; larger ones get Nack "TooLarge" (default 4 MiB).
	MaxUpdateBytes int
	// MaxMessageBytes is the gRPC message size limit used by Server and Dialer (default 16 MiB).
	MaxMessageBytes int
	// OpenTimeout is how long a session waits for the peer's Open (default 30s).
	OpenTimeout time.Duration
	// SendTimeout bounds one send: a peer that stops reading (its HTTP/2 flow-control window
	// stays shut) ends the session after it instead of holding it forever (default 45s, three
	// default heartbeat intervals). This agent decides it, not the peer's announced interval.
	SendTimeout time.Duration
	// RateLimitedRetry is how long an update refused as "RateLimited" waits before it is resent
	// (default 2s).
	RateLimitedRetry time.Duration
	// Credentials verifies a live stream's peer certificate again (when trust changes, see
	// Recheck, and every RecheckInterval) and tells when a dialed stream should be replaced.
	// Without it a stream is only held to its peer certificate's expiry.
	Credentials Credentials
	// RecheckInterval is how often a live stream's peer certificate is verified again even
	// without a change of trust (default 1m).
	RecheckInterval time.Duration
	// Clock drives the checks of peer certificates: expiry and rechecks (default the wall clock).
	Clock backoff.Clock
	// Capabilities are the optional protocol features this agent announces in Open
	// (capabilities.go).
	Capabilities []string
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	orDefault(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	orDefault(&c.UpdateRate, DefaultUpdateRate)
	orDefault(&c.UpdateBurst, DefaultUpdateBurst)
	c.ResyncAllowance = cmp.Or(c.ResyncAllowance, DefaultResyncAllowance)
	orDefault(&c.ResyncInterval, DefaultResyncInterval)
	orDefault(&c.MaxInFlight, DefaultMaxInFlight)
	orDefault(&c.MaxUpdateBytes, DefaultMaxUpdateBytes)
	orDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	orDefault(&c.OpenTimeout, DefaultOpenTimeout)
	orDefault(&c.SendTimeout, DefaultSendTimeout)
	orDefault(&c.RateLimitedRetry, DefaultRateLimitedRetry)
	orDefault(&c.RecheckInterval, DefaultRecheckInterval)
	if c.Clock == nil {
		c.Clock = backoff.RealClock
	}
}

// orDefault sets *v to d when *v is zero or negative, the unset value of a Config field.
func orDefault[T ~int | ~int64 | ~float64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Validate reports the first invalid field of a defaulted Config, naming it.
func (c *Config) Validate() error {
	if err := identity.ValidateEnvironment(c.Environment); err != nil {
		return err
	}
	switch {
	case c.Handler == nil:
		return fmt.Errorf("handler: a Handler is required")
	case c.MaxUpdateBytes > c.MaxMessageBytes:
		return fmt.Errorf("maxUpdateBytes: %d exceeds maxMessageBytes %d, so oversized updates would break the stream instead of being refused", c.MaxUpdateBytes, c.MaxMessageBytes)
	case c.UpdateBurst < 1:
		return fmt.Errorf("updateBurst: must be at least 1, got %d", c.UpdateBurst)
	}
	return nil
}

// SessionInfo describes the stream with one peer, for status.
type SessionInfo struct {
	Peer      string
	Connected bool
	// Dialed is true when this agent opened the stream.
	Dialed bool
	// Since is when the stream opened (or closed, when not connected).
	Since time.Time
	// LastHeartbeat is when the peer's last heartbeat arrived.
	LastHeartbeat time.Time
	PeerVersion   string
	PeerProtocol  uint32
	// LastError is why the last stream ended or the last dial failed, if either failed; it is
	// cleared when a stream opens.
	LastError string
	// Failure classifies LastError: FailureDial, FailureHandshake, FailureHeartbeat,
	// FailureStream or FailureTerminated.
	Failure string
	// Endpoint is the address of the current or last stream, when this agent dialed it.
	Endpoint string
	// LastConnected and LastDisconnected are when a stream last opened and ended.
	LastConnected, LastDisconnected time.Time
	// LastNackSent and LastNackReceived are the last refusals each way.
	LastNackSent, LastNackReceived *NackRecord
	// LastApplied is the last update from the peer this agent applied; PeerLastApplied the
	// last one of this agent's the peer acknowledged.
	LastApplied, PeerLastApplied *AppliedRecord
	// Capabilities the peer announced in its Open (capabilities.go).
	Capabilities []string
	// LocalCertificate is the leaf this agent presented, when it dialed (unknown otherwise).
	LocalCertificate *x509.Certificate
	// PeerCertificate is the leaf the peer presented.
	PeerCertificate *x509.Certificate
}

// Manager owns the per-peer outboxes, receiver records and sessions. It is safe for concurrent use.
type Manager struct {
	cfg Config
	log hclog.Logger

	mu    sync.Mutex
	peers map[string]*peerState
	// resyncs is when each peer last got its ResyncAllowance.
	resyncs map[string]time.Time
}

// updateLimiter is the budget of a new session with peer: UpdateBurst, plus the
// ResyncAllowance when the peer did not get it within the last ResyncInterval.
func (m *Manager) updateLimiter(peer string, now time.Time) *tokenBucket {
	b := newTokenBucket(m.cfg.UpdateRate, m.cfg.UpdateBurst, now)
	if m.cfg.ResyncAllowance <= 0 {
		return b
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.resyncs[peer]; ok && now.Sub(last) < m.cfg.ResyncInterval {
		return b
	}
	if m.resyncs == nil {
		m.resyncs = map[string]time.Time{}
	}
	m.resyncs[peer] = now
	b.tokens += float64(m.cfg.ResyncAllowance)
	return b
}

// NewManager returns a Manager for cfg (defaults filled in).
func NewManager(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("failed to validate peering config: %w", err)
	}
	return &Manager{cfg: cfg, log: cfg.Logger.Named("peering"), peers: map[string]*peerState{}}, nil
}

// MaxMessageBytes returns the gRPC message size limit Server and Dialer use.
func (m *Manager) MaxMessageBytes() int { return m.cfg.MaxMessageBytes }

// knownPeer returns the state of peer name, nil when the Manager holds none.
func (m *Manager) knownPeer(name string) *peerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peers[name]
}

// peer returns the state of peer name, created when the Manager holds none.
func (m *Manager) peer(name string) *peerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.peers[name]
	if !ok {
		ps = newPeerState(name)
		m.peers[name] = ps
	}
	return ps
}

// Publish sets the content of resource u.Resource for peer to u's payload, which the application
// chose (package protocol maps its messages to the oneof); the Manager keeps its own copy and
// sets the sequence and nonce. Identical content is a no-op; changed content gets the next
// sequence and is sent as soon as the peer is connected (now, or on the next connection).
// Removed and Inventory are the stream's own payloads: use Remove, and the Manager sends
// inventories itself.
func (m *Manager) Publish(peer string, update *peerv1.Update) error {
	if err := identity.ValidateEnvironment(peer); err != nil {
		return fmt.Errorf("failed to publish: peer %w", err)
	}
	resource := update.GetResource()
	if err := validateResource(resource); err != nil {
		return fmt.Errorf("failed to publish: %w", err)
	}
	if resource == ResourceInventory {
		return fmt.Errorf("failed to publish: resource key %q is reserved", resource)
	}
	switch update.GetPayload().(type) {
	case nil:
		return fmt.Errorf("failed to publish: update of %s has no payload", resource)
	case *peerv1.Update_Removed, *peerv1.Update_Inventory:
		return fmt.Errorf("failed to publish: unsupported payload type %T", update.GetPayload())
	}
	if n := proto.Size(&peerv1.Update{Resource: resource, Payload: update.GetPayload()}); n > m.cfg.MaxUpdateBytes {
		return fmt.Errorf("failed to publish: update is %d bytes, at most %d allowed", n, m.cfg.MaxUpdateBytes)
	}
	// The halves publish every link's state on every pass; most of it is what the peer has
	// already. That is found from the hash, before the copy the stream keeps is made.
	ps, h := m.peer(peer), hashUpdate(update)
	if ps.holds(resource, h) {
		return nil
	}
	u := &peerv1.Update{Resource: resource, Payload: proto.Clone(update).(*peerv1.Update).GetPayload()}
	if err := ps.setHashed(u, h, false); err != nil {
		return fmt.Errorf("failed to publish: %w", err)
	}
	return nil
}

// Remove withdraws resource from peer: the peer receives a Removed update. Removing an unknown
// resource is a no-op.
func (m *Manager) Remove(peer, resource string) error {
	ps := m.knownPeer(peer)
	if ps == nil {
		return nil
	}
	if err := ps.set(&peerv1.Update{Resource: resource, Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}}, true); err != nil {
		return fmt.Errorf("failed to remove: %w", err)
	}
	return nil
}

// Terminate ends the peering with peer: a Terminated message carrying reason is sent on the
// current stream, or on the next one if the peer is not connected, and the stream closes.
// Afterwards the Manager refuses streams with that peer until Forget. Terminate returns once the
// message was sent, or with ctx's error.
func (m *Manager) Terminate(ctx context.Context, peer, reason string) error {
	ps := m.peer(peer)
	sent := ps.requestTermination(reason)
	select {
	case <-sent:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to terminate peering with %q: %w", peer, ctx.Err())
	}
}

// Forget drops everything the Manager holds for peer (outbox, receiver records, termination)
// and closes its stream; use it when a Peer is deleted or paired again.
func (m *Manager) Forget(peer string) {
	m.mu.Lock()
	ps := m.peers[peer]
	delete(m.peers, peer)
	m.mu.Unlock()
	if ps != nil {
		ps.detachCurrent(ErrReplaced)
	}
}

// Sessions describes the stream with every known peer, sorted by peer name.
func (m *Manager) Sessions() []SessionInfo {
	m.mu.Lock()
	states := make([]*peerState, 0, len(m.peers))
	for _, ps := range m.peers {
		states = append(states, ps)
	}
	m.mu.Unlock()
	out := make([]SessionInfo, 0, len(states))
	for _, ps := range states {
		out = append(out, ps.sessionInfo())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}
