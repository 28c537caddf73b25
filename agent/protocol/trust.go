package protocol

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peertrust"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Nack reasons of refused trust bundles.
const (
	// ReasonInvalidCA refuses a bundle that is not a set of valid CA certificates.
	ReasonInvalidCA = "InvalidCA"
	// ReasonTrustDiscontinuity refuses a bundle that keeps none of the CAs trusted for the peer
	// now: a CA must be announced next to the current one, never swapped wholesale.
	ReasonTrustDiscontinuity = "TrustDiscontinuity"
	// ReasonNotPaired refuses trust from an environment without a Peer.
	ReasonNotPaired = "NotPaired"

	// trustResync republishes the bundle even without a change, as a safety net.
	trustResync = 30 * time.Second
)

// TrustOutbox is the part of the stream layer trust uses.
type TrustOutbox interface {
	Publish(peer string, u *peerv1.Update) error
	Acknowledged(peer, resource string) bool
}

// TrustStreams is the part of the stream layer the rotation of this agent's CA watches.
type TrustStreams interface {
	Sessions() []peering.SessionInfo
	RecheckAll()
}

// PeerLister reads the Peer objects (the informer cache).
type PeerLister interface {
	Peers() []*v1alpha1.Peer
	Peer(environment string) (*v1alpha1.Peer, bool)
}

// TrustConfig configures a TrustSync.
type TrustConfig struct {
	Identity *identity.Identity
	Outbox   TrustOutbox
	// Streams, when set, are rechecked when this agent's CAs change and tell whether they moved
	// to the active CA (a requested retirement waits for that).
	Streams TrustStreams
	Peers   PeerLister
	CRDs    *kube.Client
	// Store keeps the bundles peers announce (Peer.spec is never rewritten).
	Store *peertrust.Store
	// Endpoints are this agent's advertised endpoints, announced with its bundle.
	Endpoints []string
	// Namespace holds the Peers.
	Namespace string
	Recorder  *kube.Recorder
	// Busy, when set, reports work that must not see a CA promoted (a join under way).
	Busy   func() bool
	Logger hclog.Logger
	Now    func() time.Time
}

// TrustSync carries agent CA bundles between peers, both ways (design: "the new CA bundle
// reaches peers over the stream before it is used"):
//   - it publishes this agent's bundle (active, staged next and retiring previous CAs) as
//     resource "trust" to every peer, whenever it changes and when a peer appears;
//   - it holds the identity's staged CA back until every peer acknowledged the bundle that
//     carries it (identity.SetPromoteGate), after which the identity signs with it;
//   - it keeps the bundles peers send in their trust Secrets (peertrust), which the mTLS
//     verification reads, after checking that they keep a CA trusted now;
//   - it announces this agent's advertised endpoints with its bundle, and records the endpoints
//     peers announce in their Peer status (endpoints.go), so a dialer follows a moved peer.
type TrustSync struct {
	cfg  TrustConfig
	log  hclog.Logger
	wake chan struct{}

	mu        sync.Mutex
	published map[string][]byte // peer -> bundle last handed to the outbox
	gateOpen  bool
}

// NewTrustSync returns the TrustSync of cfg.
func NewTrustSync(cfg TrustConfig) (*TrustSync, error) {
	if cfg.Identity == nil || cfg.Outbox == nil || cfg.Peers == nil || cfg.CRDs == nil || cfg.Store == nil || cfg.Namespace == "" {
		return nil, fmt.Errorf("failed to create trust sync: Identity, Outbox, Peers, CRDs, Store and Namespace are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &TrustSync{cfg: cfg, log: cfg.Logger.Named("trust"), wake: make(chan struct{}, 1), published: map[string][]byte{}}, nil
}

// Run publishes the bundle until ctx ends. It installs the promote gate and the gates of
// requested rotations for its duration. When this agent's CAs change, the streams are checked
// again: those it dialed with a leaf of a CA no longer active move to a new connection.
func (t *TrustSync) Run(ctx context.Context) error {
	changed, stop := t.cfg.Identity.Subscribe()
	defer stop()
	t.cfg.Identity.SetPromoteGate(t.gate)
	defer t.cfg.Identity.SetPromoteGate(nil)
	t.cfg.Identity.SetRotationGates(identity.RotationGates{Trusted: t.trusted, Moved: t.moved})
	defer t.cfg.Identity.SetRotationGates(identity.RotationGates{})
	tick := time.NewTicker(trustResync)
	defer tick.Stop()
	for {
		t.publishAll()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
			if t.cfg.Streams != nil {
				t.cfg.Streams.RecheckAll()
			}
		case <-t.wake:
		case <-tick.C:
		}
	}
}

// PeersChanged asks for the bundle to be published again (a Peer appeared).
func (t *TrustSync) PeersChanged() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func livePeers(l PeerLister) []string {
	var out []string
	for _, p := range l.Peers() {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Spec.Environment)
		}
	}
	slices.Sort(out)
	return out
}

// publishAll hands the current bundle to the outbox of every peer; unchanged content costs
// nothing there.
func (t *TrustSync) publishAll() {
	bundle := t.cfg.Identity.Bundle()
	if len(bundle) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Set even when empty: an agent that only dials says so, and a peer forgets what it learnt.
	endpoints := &peerv1.AgentEndpoints{Addresses: t.cfg.Endpoints}
	for _, peer := range livePeers(t.cfg.Peers) {
		u := &peerv1.Update{Resource: ResourceTrust, Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: bundle, Endpoints: endpoints}}}
		if err := t.cfg.Outbox.Publish(peer, u); err != nil {
			t.log.Warn("failed to publish the agent CA bundle", "peer", peer, "error", err)
			continue
		}
		if !bytes.Equal(t.published[peer], bundle) {
			t.log.Debug("agent CA bundle published", "peer", peer, "cas", countCAs(bundle))
		}
		t.published[peer] = bundle
	}
}

func countCAs(bundle []byte) int {
	certs, _ := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	return len(certs)
}

// gate opens once every peer acknowledged the bundle that holds the staged CA.
func (t *TrustSync) gate() bool {
	if t.cfg.Busy != nil && t.cfg.Busy() {
		return false
	}
	open, waiting := t.trusted()
	t.mu.Lock()
	defer t.mu.Unlock()
	if open && !t.gateOpen {
		t.log.Info("every peer trusts the next agent CA: promoting it")
	} else if !open {
		t.log.Debug("next agent CA waits for peers", "peers", waiting)
	}
	t.gateOpen = open
	return open
}

// trusted reports whether every peer acknowledged this agent's current bundle, and names the
// peers that did not.
func (t *TrustSync) trusted() (bool, []string) {
	bundle := t.cfg.Identity.Bundle()
	t.mu.Lock()
	defer t.mu.Unlock()
	var waiting []string
	for _, peer := range livePeers(t.cfg.Peers) {
		if !bytes.Equal(t.published[peer], bundle) || !t.cfg.Outbox.Acknowledged(peer, ResourceTrust) {
			waiting = append(waiting, peer)
		}
	}
	return len(waiting) == 0, waiting
}

// moved reports whether every live stream uses, on this agent's side, a leaf of its active CA,
// and names the peers whose stream does not. A dialed stream is known by the leaf it presented;
// a stream the peer dialed was handshaken with the leaf current then, so it moved when it opened
// after the promotion, which re-issued the leaf before any peer learnt of it.
func (t *TrustSync) moved() (bool, []string) {
	if t.cfg.Streams == nil {
		return true, nil
	}
	promoted := t.cfg.Identity.PromotedAt()
	var stale []string
	for _, s := range t.cfg.Streams.Sessions() {
		switch {
		case !s.Connected:
		case s.Dialed && !t.cfg.Identity.IssuedByActiveCA(s.LocalCertificate):
			stale = append(stale, s.Peer)
		case !s.Dialed && !promoted.IsZero() && !s.Since.After(promoted):
			stale = append(stale, s.Peer)
		}
	}
	return len(stale) == 0, stale
}

// OnAck wakes the identity when a peer acknowledged the bundle while a CA is staged, so that the
// promotion does not wait for the next gate poll.
func (t *TrustSync) OnAck(peer string) {
	for _, ca := range t.cfg.Identity.CAs() {
		if ca.Role == "next" {
			t.log.Debug("peer acknowledged the agent CA bundle", "peer", peer)
			t.cfg.Identity.SetPromoteGate(t.gate) // installing the gate wakes the identity
			return
		}
	}
}

// AppliedSequence is the sequence of the bundle trusted for the peer of p, 0 if unknown.
func (t *TrustSync) AppliedSequence(ctx context.Context, p *v1alpha1.Peer) uint64 {
	tr, err := t.cfg.Store.Effective(ctx, p)
	if err != nil {
		t.log.Warn("failed to read the learnt trust of a peer", "peer", p.Spec.Environment, "error", err)
	}
	return tr.Sequence
}

// WithApplied adds the sequence of peer's applied bundle to applied (the sequences announced
// in Open), so that the peer resends only newer bundles, after restarts too.
func (t *TrustSync) WithApplied(peer string, applied map[string]uint64) map[string]uint64 {
	p, ok := t.cfg.Peers.Peer(peer)
	if !ok {
		return applied
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if seq := t.AppliedSequence(ctx, p); seq > 0 {
		if applied == nil {
			applied = map[string]uint64{}
		}
		applied[ResourceTrust] = seq
	}
	return applied
}

// HandleUpdate applies an update of resource "trust".
func (t *TrustSync) HandleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	switch p := u.GetPayload().(type) {
	case *peerv1.Update_Trust:
		return t.HandleTrust(ctx, peer, u.GetSequence(), p.Trust)
	case *peerv1.Update_Removed:
		// A peer cannot withdraw its own trust: the last good bundle is kept until unpairing.
		return nil
	default:
		return peering.Refuse(peering.ReasonInvalidResource, "resource %s carries a %T, want a trust bundle", u.GetResource(), u.GetPayload())
	}
}

// HandleTrust keeps a peer's bundle in its trust Secret and the endpoints it announces in its
// Peer status. A refusal keeps the last good bundle and endpoints and is sent back as a Nack;
// it is also recorded as an Event on the Peer. A bundle from an agent before 0.2 announces no
// endpoints: what was learnt before stays.
func (t *TrustSync) HandleTrust(ctx context.Context, peer string, seq uint64, tr *peerv1.Trust) error {
	now := t.cfg.Now()
	incoming, err := pemutil.ValidateCABundle(tr.GetCaBundle(), now, pairing.PeerLimits)
	if err != nil {
		return t.refuse(ctx, peer, ReasonInvalidCA, "the agent CA bundle is invalid: %v", err)
	}
	var endpoints []string
	if tr.GetEndpoints() != nil {
		if endpoints, err = validateAnnounced(tr.GetEndpoints().GetAddresses()); err != nil {
			return t.refuse(ctx, peer, ReasonInvalidEndpoints, "the announced endpoints are invalid: %v", err)
		}
	}
	p, err := t.cfg.CRDs.Peers().Get(ctx, t.cfg.Namespace, peer)
	if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil) {
		return t.refuse(ctx, peer, ReasonNotPaired, "there is no Peer %s in namespace %s", peer, t.cfg.Namespace)
	}
	if err != nil {
		return fmt.Errorf("failed to read peer %s: %w", peer, err)
	}
	cur, err := t.cfg.Store.Effective(ctx, p)
	if err != nil {
		return err
	}
	current, _ := pemutil.ParseCertificates(cur.Bundle, pemutil.Limits{})
	if !keepsTrustedCA(current, incoming, now) {
		return t.refuse(ctx, peer, ReasonTrustDiscontinuity,
			"the bundle keeps none of the %d agent CA(s) trusted now for %s: announce a new CA next to the current one, or pair again to replace it",
			len(current), peer)
	}
	bundle := pemutil.EncodeBundle(incoming)
	if !bytes.Equal(cur.Bundle, bundle) || cur.Sequence < seq || cur.Source != peertrust.SourceLearned {
		if err := t.cfg.Store.Save(ctx, p, bundle, seq); err != nil {
			return fmt.Errorf("failed to update the trust of peer %s: %w", peer, err)
		}
		if added, dropped := diffCAs(current, incoming); len(added)+len(dropped) > 0 {
			t.log.Info("peer agent CA bundle updated", "peer", peer, "sequence", seq, "added", added, "dropped", dropped)
			t.event(ctx, peer, corev1.EventTypeNormal, "TrustUpdated", fmt.Sprintf("agent CA bundle of %s updated: %d CA(s) added, %d dropped", peer, len(added), len(dropped)))
		}
	}
	if tr.GetEndpoints() != nil {
		return t.learnEndpoints(ctx, p, endpoints)
	}
	return nil
}

func (t *TrustSync) refuse(ctx context.Context, peer, reason, format string, args ...any) error {
	err := peering.Refuse(reason, format, args...)
	t.event(ctx, peer, corev1.EventTypeWarning, v1alpha1.ReasonCABundleRejected, err.Error())
	return err
}

func (t *TrustSync) event(ctx context.Context, peer, eventType, reason, msg string) {
	if t.cfg.Recorder == nil {
		return
	}
	if p, err := t.cfg.CRDs.Peers().Get(ctx, t.cfg.Namespace, peer); err == nil {
		t.cfg.Recorder.Event(p, eventType, reason, msg)
	}
}

// keepsTrustedCA reports whether incoming holds a CA of current that is valid at now: the
// certificate the peer authenticates with today chains to one of those, so a bundle without
// any would be a wholesale swap of the peer's trust.
func keepsTrustedCA(current, incoming []*x509.Certificate, now time.Time) bool {
	for _, c := range current {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			continue
		}
		if slices.ContainsFunc(incoming, func(i *x509.Certificate) bool { return i.Equal(c) }) {
			return true
		}
	}
	return false
}

// diffCAs lists the fingerprints (shortened) added and dropped between two bundles.
func diffCAs(before, after []*x509.Certificate) (added, dropped []string) {
	has := func(set []*x509.Certificate, c *x509.Certificate) bool {
		return slices.ContainsFunc(set, func(x *x509.Certificate) bool { return x.Equal(c) })
	}
	for _, c := range after {
		if !has(before, c) {
			added = append(added, pemutil.Fingerprint(c)[:16])
		}
	}
	for _, c := range before {
		if !has(after, c) {
			dropped = append(dropped, pemutil.Fingerprint(c)[:16])
		}
	}
	return added, dropped
}
