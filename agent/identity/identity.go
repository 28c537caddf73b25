// Package identity owns the agent's own identity: a self-signed agent CA persisted in a
// Kubernetes Secret, the short-lived leaf certificates it issues in memory for the gRPC server
// and client, the public identity ConfigMap agentctl reads, CA rotation, and the mTLS
// configurations that check a peer's certificate against that peer's CA bundle.
//
// The Secret ecklink-agent-ca holds ca.crt/ca.key (the active signer), bundle.crt (every agent CA
// peers must trust: active, staged next, retiring previous), and during a rotation next.crt/
// next.key and previous.crt. The ConfigMap ecklink-agent-identity holds environment, bundle.crt,
// endpoints (one per line) and pin (SPKI pin of the active CA).
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// Identity is the agent's identity. Create it with New, then call Init (or Run, which calls it)
// before serving. Its methods are safe for concurrent use.
type Identity struct {
	cfg Config
	log hclog.Logger

	// opMu serialises changes of state: each one is persisted before it takes effect.
	opMu sync.Mutex
	// mu guards the fields below; it is held only to read or swap them.
	mu     sync.RWMutex
	st     *state
	leaf   *leaf
	gate   func() bool
	gates  RotationGates
	subs   map[int]chan struct{}
	nextID int
	// requests reads the identity ConfigMap while Run watches it.
	requests cache.Store

	// retireWait is when a requested retirement started waiting for streams to move, and
	// reported the last rotation status written (Run's goroutine only).
	retireWait time.Time
	reported   RotationStatus

	wake chan struct{}
}

// CAInfo describes one agent CA for status output.
type CAInfo struct {
	// Role is "active", "next" or "previous".
	Role        string
	Fingerprint string
	Pin         string
	NotBefore   time.Time
	NotAfter    time.Time
}

// New validates cfg (after filling defaults) and returns an Identity that has not loaded its
// CA yet.
func New(cfg Config) (*Identity, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("failed to validate identity config: %w", err)
	}
	return &Identity{
		cfg:  cfg,
		log:  cfg.Logger.Named("identity"),
		subs: map[int]chan struct{}{},
		wake: make(chan struct{}, 1),
	}, nil
}

// Init loads the agent CA from its Secret (creating both when missing), repairs the rotation
// state if the agent was down across a deadline, issues a leaf and publishes the ConfigMap.
func (i *Identity) Init(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	st, sec, err := i.loadOrCreate(ctx)
	if err != nil {
		return err
	}
	now := i.cfg.Clock.Now()
	changed := false
	if !now.Before(st.active.cert.NotAfter) {
		if st.next == nil || !now.Before(st.next.cert.NotAfter) {
			return fmt.Errorf("failed to load agent CA: it expired at %s and no valid next CA is staged; delete secret %s/%s to create a new one, then pair again",
				st.active.cert.NotAfter.UTC().Format(time.RFC3339), i.cfg.Namespace, SecretName)
		}
		st = &state{active: st.next}
		changed = true
	}
	if st.previous != nil && !now.Before(i.previousRetireAt(st)) {
		st.previous = nil
		changed = true
	}
	if string(sec.Data[KeyBundle]) != string(pemutil.EncodeBundle(st.bundle())) {
		changed = true
	}
	if changed {
		if err := i.persist(ctx, st); err != nil {
			return err
		}
	}
	l, err := issueLeaf(st.active, i.cfg.Environment, i.cfg.Endpoints, now, i.cfg.LeafValidity)
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.st, i.leaf = st, l
	i.mu.Unlock()
	if err := i.publish(ctx, st); err != nil {
		return err
	}
	i.notify()
	return nil
}

// Run keeps the identity current until ctx ends: it renews the leaf at 2/3 of its lifetime,
// stages the next CA at RotateAt of the active CA's lifetime, promotes it after Overlap (or when
// the promote gate opens) and retires the previous CA before it expires. It calls Init first if
// needed. Failed steps are retried with backoff; Run returns nil when ctx ends.
func (i *Identity) Run(ctx context.Context) error {
	i.mu.RLock()
	initialized := i.st != nil
	i.mu.RUnlock()
	if !initialized {
		if err := i.Init(ctx); err != nil {
			return err
		}
	}
	if err := i.watchRequests(ctx); err != nil {
		return err
	}
	retry := backoff.New(backoff.Config{Initial: time.Second, Max: time.Minute}, i.cfg.Clock)
	for {
		now := i.cfg.Clock.Now()
		next, err := i.tick(ctx, now)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d := retry.Next()
			i.log.Warn("failed to maintain identity", "error", err, "retry_in", d)
			next = now.Add(d)
		} else {
			retry.Reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-i.cfg.Clock.After(next.Sub(now)):
		case <-i.wake:
		}
	}
}

// tick performs every step that is due at now and returns when the next one is.
func (i *Identity) tick(ctx context.Context, now time.Time) (time.Time, error) {
	reqNext, err := i.advanceRequest(ctx, now)
	if err != nil {
		return now, err
	}
	i.mu.RLock()
	st, gate := i.st, i.gate
	i.mu.RUnlock()

	if st.previous != nil && !now.Before(i.previousRetireAt(st)) {
		if err := i.RetirePrevious(ctx); err != nil {
			return now, err
		}
	}
	if st.next == nil && !now.Before(stageAt(st.active.cert, i.cfg.RotateAt)) {
		if err := i.StageNextCA(ctx); err != nil {
			return now, err
		}
	}
	if st.next != nil && (!now.Before(st.nextStaged.Add(i.cfg.Overlap)) || (gate != nil && gate())) {
		if err := i.PromoteNextCA(ctx); err != nil {
			return now, err
		}
	}
	i.mu.RLock()
	l := i.leaf
	i.mu.RUnlock()
	if !now.Before(l.renewAt) {
		if err := i.renewLeaf(now); err != nil {
			return now, err
		}
	}

	i.mu.RLock()
	st, l = i.st, i.leaf
	i.mu.RUnlock()
	next := l.renewAt
	if st.next == nil {
		next = earliest(next, stageAt(st.active.cert, i.cfg.RotateAt))
	} else {
		next = earliest(next, st.nextStaged.Add(i.cfg.Overlap))
		if gate != nil {
			next = earliest(next, now.Add(i.cfg.GatePoll))
		}
	}
	if st.previous != nil {
		next = earliest(next, i.previousRetireAt(st))
	}
	if !reqNext.IsZero() {
		next = earliest(next, reqNext)
	}
	return next, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// stageAt is when the next CA should be staged for the active CA.
func stageAt(ca *x509.Certificate, fraction float64) time.Time {
	life := ca.NotAfter.Sub(ca.NotBefore)
	return ca.NotBefore.Add(time.Duration(float64(life) * fraction))
}

// retireAt is the latest a previous CA may stay in the bundle: just before it expires, so that a
// bundle published by this agent never holds an expired certificate, which peers would refuse.
func retireAt(ca *x509.Certificate) time.Time {
	margin := min(time.Hour, ca.NotAfter.Sub(ca.NotBefore)/100)
	return ca.NotAfter.Add(-margin)
}

func (i *Identity) renewLeaf(now time.Time) error {
	i.mu.RLock()
	active := i.st.active
	i.mu.RUnlock()
	l, err := issueLeaf(active, i.cfg.Environment, i.cfg.Endpoints, now, i.cfg.LeafValidity)
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.leaf = l
	i.mu.Unlock()
	i.log.Debug("renewed leaf certificate", "expires", l.tls.Leaf.NotAfter)
	return nil
}

// GetCertificate returns the current leaf; it is the tls.Config callback for servers.
func (i *Identity) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return i.currentLeaf()
}

// GetClientCertificate returns the current leaf; it is the tls.Config callback for clients.
func (i *Identity) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return i.currentLeaf()
}

func (i *Identity) currentLeaf() (*tls.Certificate, error) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.leaf == nil {
		return nil, fmt.Errorf("identity not initialized")
	}
	return i.leaf.tls, nil
}

// Leaf returns the current leaf certificate, or nil before Init.
func (i *Identity) Leaf() *x509.Certificate {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.leaf == nil {
		return nil
	}
	return i.leaf.tls.Leaf
}

// Environment returns the agent's environment name.
func (i *Identity) Environment() string { return i.cfg.Environment }

// Endpoints returns the advertised host:port endpoints.
func (i *Identity) Endpoints() []string { return slices.Clone(i.cfg.Endpoints) }

// Bundle returns the PEM bundle of every agent CA peers must trust for this agent.
func (i *Identity) Bundle() []byte { return pemutil.EncodeBundle(i.CACertificates()) }

// CACertificates returns the certificates of Bundle, active first.
func (i *Identity) CACertificates() []*x509.Certificate {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil {
		return nil
	}
	return i.st.bundle()
}

// Pin returns the SPKI pin ("sha256:<hex>") of the active CA, or "" before Init.
func (i *Identity) Pin() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil {
		return ""
	}
	return pemutil.SPKIPin(i.st.active.cert)
}

// CAs describes the active, next and previous CAs.
func (i *Identity) CAs() []CAInfo {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.st == nil {
		return nil
	}
	info := func(role string, c *x509.Certificate) CAInfo {
		return CAInfo{Role: role, Fingerprint: pemutil.Fingerprint(c), Pin: pemutil.SPKIPin(c), NotBefore: c.NotBefore, NotAfter: c.NotAfter}
	}
	out := []CAInfo{info("active", i.st.active.cert)}
	if i.st.next != nil {
		out = append(out, info("next", i.st.next.cert))
	}
	if i.st.previous != nil {
		out = append(out, info("previous", i.st.previous))
	}
	return out
}

// Subscribe returns a channel that receives a value (coalesced) whenever Bundle changes, and a
// function that ends the subscription.
func (i *Identity) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	i.mu.Lock()
	id := i.nextID
	i.nextID++
	i.subs[id] = ch
	i.mu.Unlock()
	return ch, func() {
		i.mu.Lock()
		delete(i.subs, id)
		i.mu.Unlock()
	}
}

func (i *Identity) notify() {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, ch := range i.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (i *Identity) poke() {
	select {
	case i.wake <- struct{}{}:
	default:
	}
}
