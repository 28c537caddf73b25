// Package peers turns Peer objects into the agent's trust and dial lists, keeps their status
// (connection, heartbeats, CA expiry) and, when one is deleted or the peer ends the peering,
// removes what the peering applied and invalidates what it issued before letting it go.
package peers

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peertrust"
	"github.com/ecklink/ecklink/internal/peertext"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/internal/task"
	"github.com/ecklink/ecklink/internal/worker"
)

// Cleaner removes what a peering applied or issued.
type Cleaner interface {
	PeerGone(peer string)
}

// Sessions is the stream layer as the controller uses it.
type Sessions interface {
	Sessions() []peering.SessionInfo
	Terminate(ctx context.Context, peer, reason string) error
	Forget(peer string)
	// Recheck verifies the peer certificate of peer's live stream against the current trust.
	Recheck(peer string)
}

// Config configures the Controller.
type Config struct {
	Cache    *cache.Cache
	CRDs     *kube.Client
	Sessions Sessions
	Cleaners []Cleaner
	// Store holds the bundles peers announced; the trusted bundle of a peer comes from it.
	Store   *peertrust.Store
	Metrics *metrics.Metrics
	Logger  hclog.Logger
	Now     func() time.Time
	// StatusInterval is how often Peer status is refreshed.
	StatusInterval time.Duration
}

// Controller implements identity.TrustSource and peering.PeerSource from Peer objects.
type Controller struct {
	cfg   Config
	log   hclog.Logger
	set   *peering.PeerSet
	queue workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	trust map[string]trusted // environment -> parsed CA bundle
}

type trusted struct {
	version string
	bundle  []byte
	cas     []*x509.Certificate
}

var (
	_ identity.TrustSource = (*Controller)(nil)
	_ peering.PeerSource   = (*Controller)(nil)
)

// New builds the Controller and registers its handlers on the cache.
func New(cfg Config) (*Controller, error) {
	if cfg.Cache == nil || cfg.CRDs == nil || cfg.Sessions == nil || cfg.Store == nil {
		return nil, fmt.Errorf("failed to create peer controller: Cache, CRDs, Sessions and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 10 * time.Second
	}
	c := &Controller{
		cfg:   cfg,
		log:   cfg.Logger.Named("peers"),
		set:   peering.NewPeerSet(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		trust: map[string]trusted{},
	}
	err := cfg.Cache.OnPeer(func(old, new any) {
		for _, o := range []any{old, new} {
			if u, ok := o.(*unstructured.Unstructured); ok {
				c.queue.Add(u.GetName())
			}
		}
		// The informer's store already holds new: PeerCAs answers with the changed trust.
		if env, ok := trustChanged(old, new); ok {
			c.log.Info("peer trust changed: checking its live stream again", "peer", env)
			cfg.Sessions.Recheck(env)
		}
	})
	return c, err
}

// trustChanged reports whether a Peer event changed the CAs trusted for its environment (an
// update of spec.caBundle, or a deletion), and names the environment. A live stream opened
// with a certificate of a CA no longer trusted must end now, not at its next handshake.
func trustChanged(old, new any) (string, bool) {
	bundle := func(o any) (env, ca string, ok bool) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return "", "", false
		}
		env, _, _ = unstructured.NestedString(u.Object, "spec", "environment")
		ca, _, _ = unstructured.NestedString(u.Object, "spec", "caBundle")
		return env, ca, true
	}
	oenv, oca, oldOK := bundle(old)
	nenv, nca, newOK := bundle(new)
	switch {
	case oldOK && newOK:
		return nenv, oca != nca
	case oldOK:
		return oenv, true
	default:
		return "", false
	}
}

// PeerCAs implements identity.TrustSource: the CAs of a paired environment.
func (c *Controller) PeerCAs(environment string) []*x509.Certificate {
	// A Peer being deleted stays trusted until its finalizer has told the peer (Terminated).
	p, ok := c.cfg.Cache.Peer(environment)
	if !ok || p.Spec.Environment != environment {
		return nil
	}
	tr, ok := c.cfg.Store.Cached(p)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		tr, err = c.cfg.Store.Effective(ctx, p)
		cancel()
		if err != nil {
			c.log.Warn("peer trust not read: trusting spec.caBundle", "peer", environment, "error", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.trust[environment]; ok && t.version == p.ResourceVersion && bytes.Equal(t.bundle, tr.Bundle) {
		return t.cas
	}
	// Expired CAs are dropped by verification itself; a bundle that does not parse trusts nothing.
	cas, err := pemutil.ParseCertificates(tr.Bundle, pemutil.Limits{})
	if err != nil {
		c.log.Warn("peer CA bundle unusable", "peer", environment, "error", err)
		cas = nil
	}
	c.trust[environment] = trusted{version: p.ResourceVersion, bundle: tr.Bundle, cas: cas}
	return cas
}

// TrustChanged is told that the bundle trusted for peer changed (peertrust.Store): its status
// is refreshed, and its live stream is verified against the new trust at once (a CA the peer
// retired ends a stream still presenting one of its leaves, as a change of spec.caBundle does).
func (c *Controller) TrustChanged(peer string) {
	c.queue.Add(peer)
	c.cfg.Sessions.Recheck(peer)
}

// Environments implements identity.TrustSource.
func (c *Controller) Environments() []string {
	var out []string
	for _, p := range c.cfg.Cache.Peers() {
		out = append(out, p.Spec.Environment)
	}
	slices.Sort(out)
	return out
}

// Peers implements peering.PeerSource.
func (c *Controller) Peers() []peering.PeerInfo { return c.set.Peers() }

// Changed implements peering.PeerSource.
func (c *Controller) Changed() <-chan struct{} { return c.set.Changed() }

// Run reconciles Peers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	go task.Every(ctx, c.cfg.StatusInterval, func() {
		for _, p := range c.cfg.Cache.Peers() {
			c.queue.Add(p.Name)
		}
	})
	for _, p := range c.cfg.Cache.Peers() {
		c.queue.Add(p.Name)
	}
	worker.Run(ctx, c.queue, 1, c.process)
	return ctx.Err()
}

// process reconciles the Peer name and retries it with backoff after a failure.
func (c *Controller) process(ctx context.Context, name string) {
	if err := c.reconcile(ctx, name); err != nil {
		c.log.Warn("peer reconcile failed, will retry", "peer", name, "error", err)
		c.queue.AddRateLimited(name)
	} else {
		c.queue.Forget(name)
	}
}

// Refresh queues a peer's status (e.g. on connect or disconnect).
func (c *Controller) Refresh(peer string) { c.queue.Add(peer) }

// Terminated handles the peer ending the peering: the Peer object goes, and its finalizer
// cleans up.
func (c *Controller) Terminated(ctx context.Context, peer, reason string) {
	c.log.Info("peer ended the peering", "peer", peer, "reason", reason)
	p, ok := c.cfg.Cache.Peer(peer)
	if !ok {
		return
	}
	// Said in status first, for whoever watches the Peer while its finalizer cleans up.
	if _, err := c.cfg.CRDs.Peers().UpdateStatus(ctx, p, func(x *v1alpha1.Peer) error {
		x.Status.State = v1alpha1.PeerStateTerminated
		kube.Set(x, kube.NewCondition(x, v1alpha1.ConditionConnected, metav1.ConditionFalse, v1alpha1.ReasonPeerTerminated,
			"environment "+peer+" ended the peering: "+peertext.Clean(reason, peertext.Status)))
		return nil
	}); err != nil {
		c.log.Warn("failed to report the end of the peering", "peer", peer, "error", err)
	}
	if err := c.cfg.CRDs.Peers().Delete(ctx, p.Namespace, p.Name); err != nil {
		c.log.Warn("failed to delete terminated peer", "peer", peer, "error", err)
	}
}

func (c *Controller) reconcile(ctx context.Context, name string) error {
	p, ok := c.cfg.Cache.Peer(name)
	if !ok {
		c.set.Delete(name)
		return nil
	}
	if p.DeletionTimestamp != nil {
		return c.finalize(ctx, p)
	}
	if !slices.Contains(p.Finalizers, v1alpha1.Finalizer) {
		p = p.DeepCopy()
		p.Finalizers = append(p.Finalizers, v1alpha1.Finalizer)
		_, err := c.cfg.CRDs.Peers().Update(ctx, p)
		return err
	}
	c.set.Set(peering.PeerInfo{Environment: p.Spec.Environment, Endpoints: dialOrder(p), Dial: p.Spec.Dial})
	return c.updateStatus(ctx, p)
}

// stillFinalizing says whether the Peer the API server holds (live, or getErr) is the cached
// Peer being deleted and still waiting for this agent's finalizer.
func stillFinalizing(cached, live *v1alpha1.Peer, getErr error) bool {
	return getErr == nil && live != nil && live.UID == cached.UID && live.DeletionTimestamp != nil &&
		slices.Contains(live.Finalizers, v1alpha1.Finalizer)
}

// finalize ends the peering: tell the peer, remove and invalidate, then let the Peer go.
func (c *Controller) finalize(ctx context.Context, p *v1alpha1.Peer) error {
	if !slices.Contains(p.Finalizers, v1alpha1.Finalizer) {
		return nil
	}
	// The cache can still hold the deleted Peer after this agent removed its finalizer; a
	// pairing made since creates a Peer of the same name, and finalizing the stale copy would
	// terminate the new peering on its first stream. Only the object the API server still
	// holds, being deleted, with the finalizer, is finalized.
	live, err := c.cfg.CRDs.Peers().Get(ctx, p.Namespace, p.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to read peer %s: %w", p.Name, err)
	}
	if !stillFinalizing(p, live, err) {
		return nil // gone, a newer Peer, or already finalized: its own events bring it here
	}
	p = live
	// Tell the peer first, while the stream and its trust still stand. An agent that starts
	// with the Peer already being deleted has not dialed it yet: it dials now, to deliver it.
	c.set.Set(peering.PeerInfo{Environment: p.Spec.Environment, Endpoints: dialOrder(p), Dial: p.Spec.Dial})
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := c.cfg.Sessions.Terminate(tctx, p.Spec.Environment, "the peering was deleted"); err != nil {
		c.log.Warn("peer not told about the end of the peering (not connected): it keeps what it issued until it learns", "peer", p.Spec.Environment, "error", err)
	}
	cancel()
	c.set.Delete(p.Spec.Environment)
	for _, cl := range c.cfg.Cleaners {
		cl.PeerGone(p.Spec.Environment)
	}
	c.cfg.Sessions.Forget(p.Spec.Environment)
	c.cfg.Metrics.ForgetPeer(p.Spec.Environment)
	p = p.DeepCopy()
	p.Finalizers = slices.DeleteFunc(p.Finalizers, func(f string) bool { return f == v1alpha1.Finalizer })
	if _, err := c.cfg.CRDs.Peers().Update(ctx, p); err != nil {
		return fmt.Errorf("failed to remove finalizer of peer %s: %w", p.Name, err)
	}
	c.log.Info("peering removed", "peer", p.Spec.Environment)
	return nil
}

// updateStatus writes the state, the Connected, TrustCurrent and Ready conditions and the stream
// facts.
func (c *Controller) updateStatus(ctx context.Context, p *v1alpha1.Peer) error {
	var info *peering.SessionInfo
	for _, s := range c.cfg.Sessions.Sessions() {
		if s.Peer == p.Spec.Environment {
			info = &s
			break
		}
	}
	now := c.cfg.Now()
	c.cfg.Metrics.PeerUp(p.Spec.Environment, info != nil && info.Connected)
	if info != nil {
		c.cfg.Metrics.PeerHeartbeat(p.Spec.Environment, info.LastHeartbeat)
	}
	state := peerState(p, info)
	connected := connectedCondition(p, state, info)
	tr, err := c.cfg.Store.Effective(ctx, p)
	if err != nil {
		return err
	}
	cas, err := pemutil.ParseCertificates(tr.Bundle, pemutil.Limits{})
	trust := trustCondition(p, cas, err, info, now)
	var infos []v1alpha1.CertificateInfo
	for _, ca := range cas {
		infos = append(infos, v1alpha1.CertificateInfo{Fingerprint: pemutil.Fingerprint(ca), Subject: peertext.Clean(ca.Subject.String(), peertext.Status), NotAfter: &metav1.Time{Time: ca.NotAfter}})
	}
	_, err = c.cfg.CRDs.Peers().UpdateStatus(ctx, p, func(x *v1alpha1.Peer) error {
		kube.Set(x, connected)
		kube.Set(x, trust)
		// Ready summarizes both, so every kind has the Ready column and health checks (Argo CD)
		// read one condition.
		kube.Set(x, kube.Ready(x, v1alpha1.ConditionConnected, v1alpha1.ConditionTrustCurrent))
		x.Status.ObservedGeneration = x.Generation
		x.Status.CertificateAuthorities = infos
		x.Status.State = state
		x.Status.Stream = streamStatus(x.Status.Stream, info)
		if info != nil {
			if info.PeerVersion != "" {
				x.Status.PeerVersion = info.PeerVersion
			}
			if !info.LastHeartbeat.IsZero() {
				x.Status.LastHeartbeat = &metav1.Time{Time: info.LastHeartbeat.Truncate(time.Second)}
			}
		}
		return nil
	})
	return err
}
