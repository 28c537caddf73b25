package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peering"
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

	// AnnotationTrustSequence on a Peer is the peer's sequence of the bundle in spec.caBundle,
	// announced in Open so the peer resends only newer bundles, across restarts too.
	AnnotationTrustSequence = "ecklink.io/trust-sequence"

	// trustResync republishes the bundle even without a change, as a safety net.
	trustResync = 30 * time.Second
)

// trustOutbox is the part of the stream layer trust uses.
type trustOutbox interface {
	Publish(peer, resource string, payload proto.Message) error
	Acknowledged(peer, resource string) bool
}

// streams is the part of the stream layer the rotation of this agent's CA watches.
type streams interface {
	Sessions() []peering.SessionInfo
	RecheckAll()
}

// peerLister reads the Peer objects (the informer cache).
type peerLister interface {
	Peers() []*v1alpha1.Peer
	Peer(environment string) (*v1alpha1.Peer, bool)
}

// trustConfig configures a trustSync.
type trustConfig struct {
	Identity *identity.Identity
	Outbox   trustOutbox
	// Streams, when set, are rechecked when this agent's CAs change and tell whether they moved
	// to the active CA (a requested retirement waits for that).
	Streams streams
	Peers   peerLister
	CRDs    *kube.Client
	// Namespace holds the Peers.
	Namespace string
	Recorder  *kube.Recorder
	// Busy, when set, reports work that must not see a CA promoted (a join under way).
	Busy   func() bool
	Logger hclog.Logger
	Now    func() time.Time
}

// trustSync carries agent CA bundles between peers, both ways (design: "the new CA bundle
// reaches peers over the stream before it is used"):
//   - it publishes this agent's bundle (active, staged next and retiring previous CAs) as
//     resource "trust" to every peer, whenever it changes and when a peer appears;
//   - it holds the identity's staged CA back until every peer acknowledged the bundle that
//     carries it (identity.SetPromoteGate), after which the identity signs with it;
//   - it applies the bundles peers send to their Peer objects, which the mTLS verification
//     reads, after checking that they keep a CA trusted now.
type trustSync struct {
	cfg  trustConfig
	log  hclog.Logger
	wake chan struct{}

	mu        sync.Mutex
	published map[string][]byte // peer -> bundle last handed to the outbox
	gateOpen  bool
}

func newTrustSync(cfg trustConfig) (*trustSync, error) {
	if cfg.Identity == nil || cfg.Outbox == nil || cfg.Peers == nil || cfg.CRDs == nil || cfg.Namespace == "" {
		return nil, fmt.Errorf("failed to create trust sync: Identity, Outbox, Peers, CRDs and Namespace are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &trustSync{cfg: cfg, log: cfg.Logger.Named("trust"), wake: make(chan struct{}, 1), published: map[string][]byte{}}, nil
}

// Run publishes the bundle until ctx ends. It installs the promote gate and the gates of
// requested rotations for its duration. When this agent's CAs change, the streams are checked
// again: those it dialed with a leaf of a CA no longer active move to a new connection.
func (t *trustSync) Run(ctx context.Context) error {
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
func (t *trustSync) PeersChanged() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func livePeers(l peerLister) []string {
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
func (t *trustSync) publishAll() {
	bundle := t.cfg.Identity.Bundle()
	if len(bundle) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, peer := range livePeers(t.cfg.Peers) {
		if err := t.cfg.Outbox.Publish(peer, peering.ResourceTrust, &peerv1.Trust{CaBundle: bundle}); err != nil {
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
func (t *trustSync) gate() bool {
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
func (t *trustSync) trusted() (bool, []string) {
	bundle := t.cfg.Identity.Bundle()
	t.mu.Lock()
	defer t.mu.Unlock()
	var waiting []string
	for _, peer := range livePeers(t.cfg.Peers) {
		if !bytes.Equal(t.published[peer], bundle) || !t.cfg.Outbox.Acknowledged(peer, peering.ResourceTrust) {
			waiting = append(waiting, peer)
		}
	}
	return len(waiting) == 0, waiting
}

// moved reports whether every live stream uses, on this agent's side, a leaf of its active CA,
// and names the peers whose stream does not. A dialed stream is known by the leaf it presented;
// a stream the peer dialed was handshaken with the leaf current then, so it moved when it opened
// after the promotion, which re-issued the leaf before any peer learnt of it.
func (t *trustSync) moved() (bool, []string) {
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
func (t *trustSync) OnAck(peer string) {
	for _, ca := range t.cfg.Identity.CAs() {
		if ca.Role == "next" {
			t.log.Debug("peer acknowledged the agent CA bundle", "peer", peer)
			t.cfg.Identity.SetPromoteGate(t.gate) // installing the gate wakes the identity
			return
		}
	}
}

// AppliedSequence is the sequence of the peer's bundle held in its Peer object, 0 if unknown.
func (t *trustSync) AppliedSequence(p *v1alpha1.Peer) uint64 {
	seq, _ := strconv.ParseUint(p.Annotations[AnnotationTrustSequence], 10, 64)
	return seq
}

// WithApplied adds the sequence of peer's applied bundle to applied (the sequences announced
// in Open), so that the peer resends only newer bundles, after restarts too.
func (t *trustSync) WithApplied(peer string, applied map[string]uint64) map[string]uint64 {
	p, ok := t.cfg.Peers.Peer(peer)
	if !ok {
		return applied
	}
	if seq := t.AppliedSequence(p); seq > 0 {
		if applied == nil {
			applied = map[string]uint64{}
		}
		applied[peering.ResourceTrust] = seq
	}
	return applied
}

// HandleUpdate applies an update of resource "trust".
func (t *trustSync) HandleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
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

// HandleTrust applies a peer's bundle to its Peer object. A refusal keeps the last good bundle
// and is sent back as a Nack; it is also recorded as an Event on the Peer.
func (t *trustSync) HandleTrust(ctx context.Context, peer string, seq uint64, tr *peerv1.Trust) error {
	now := t.cfg.Now()
	incoming, err := pemutil.ValidateCABundle(tr.GetCaBundle(), now, pairing.PeerLimits)
	if err != nil {
		return t.refuse(ctx, peer, ReasonInvalidCA, "the agent CA bundle is invalid: %v", err)
	}
	bundle := string(pemutil.EncodeBundle(incoming))
	var added, dropped []string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := t.cfg.CRDs.Peers().Get(ctx, t.cfg.Namespace, peer)
		if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil) {
			return peering.Refuse(ReasonNotPaired, "there is no Peer %s in namespace %s", peer, t.cfg.Namespace)
		}
		if err != nil {
			return err
		}
		current, _ := pemutil.ParseCertificates([]byte(p.Spec.CABundle), pemutil.Limits{})
		if !keepsTrustedCA(current, incoming, now) {
			return peering.Refuse(ReasonTrustDiscontinuity,
				"the bundle keeps none of the %d agent CA(s) trusted now for %s: announce a new CA next to the current one, or pair again to replace it",
				len(current), peer)
		}
		if p.Spec.CABundle == bundle && t.AppliedSequence(p) >= seq {
			return nil
		}
		added, dropped = diffCAs(current, incoming)
		p = p.DeepCopy()
		p.Spec.CABundle = bundle
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[AnnotationTrustSequence] = strconv.FormatUint(seq, 10)
		_, err = t.cfg.CRDs.Peers().Update(ctx, p)
		return err
	})
	var refusal *peering.RefusalError
	switch {
	case err == nil:
	case errors.As(err, &refusal):
		return t.refuse(ctx, peer, refusal.Reason, "%s", refusal.Message)
	default:
		return fmt.Errorf("failed to update the trust of peer %s: %w", peer, err)
	}
	if len(added)+len(dropped) > 0 {
		t.log.Info("peer agent CA bundle updated", "peer", peer, "sequence", seq, "added", added, "dropped", dropped)
		t.event(ctx, peer, corev1.EventTypeNormal, "TrustUpdated", fmt.Sprintf("agent CA bundle of %s updated: %d CA(s) added, %d dropped", peer, len(added), len(dropped)))
	}
	return nil
}

func (t *trustSync) refuse(ctx context.Context, peer, reason, format string, args ...any) error {
	err := peering.Refuse(reason, format, args...)
	t.event(ctx, peer, corev1.EventTypeWarning, v1alpha1.ReasonCABundleRejected, err.Error())
	return err
}

func (t *trustSync) event(ctx context.Context, peer, eventType, reason, msg string) {
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
