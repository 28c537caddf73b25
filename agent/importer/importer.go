// Package importer is the local side of a link. For each local Elasticsearch with RemoteClusters
// it asks the peers for their exports, and applies what they send, locally, through the link's
// security model (securityModel, model.go, chosen once per link by modelOf from the
// RemoteCluster's spec.model; plan refuses an answer of another model). The API-key model
// (apikeymodel.go, reconcile.go's apply) puts the encoded keys in one Secret (a secure-settings
// source), the remote CA bundles in one ConfigMap (mounted and listed for the remote cluster
// client only), wires the Elasticsearch resource once, and reports to the peer which key is in
// effect, so the peer can rotate keys make-before-break. The certificate model (certmodel.go)
// puts the remote transport CA into the local transport trust. Both point proxy-mode remote
// cluster settings at the peer and verify with GET /_remote/info.
//
// A third model is one more implementation of securityModel (its import request, validation,
// pass, conditions, status, license and what it releases), listed in models at the place its
// pass must run; no other file asks which model a link uses.
package importer

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/task"
	"github.com/ecklink/ecklink/internal/worker"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Outbox sends resources to peers.
type Outbox = halves.Outbox

// Config configures the Importer: what both halves are built from (Resync re-checks every
// local Elasticsearch), and the importer's own.
type Config struct {
	halves.Deps
	Outbox Outbox
	// Pending is how soon a link that is not yet connected is checked again.
	Pending time.Duration
	// AgentNamespace holds the signing CA Secret (strong identity).
	AgentNamespace string
	// AgentUser says the agent authenticates as its own Elasticsearch user (agent/esuser), whose
	// spec.auth entries a manual-wiring snippet must then name too.
	AgentUser bool
	// Signing sets the signing CA and certificate lifetimes (Environment is filled in).
	Signing signing.Config
	// SigningTick is how often the signing CA rotation advances. Default one minute.
	SigningTick time.Duration
	// Pods lists and marks the consuming Elasticsearch's pods (pods.go); Kube if nil. A client
	// of its own keeps these best-effort requests from spending the rate limit of the writes
	// that matter.
	Pods kubernetes.Interface
}

// received is the latest answer of a peer for a link.
type received struct {
	peer     string
	sequence uint64
	creds    *peerv1.Credentials
	refusal  *peerv1.Refusal
	// removed: the peer withdrew its answer or the peering ended.
	removed bool
	// local: the refusal is this agent's, of an answer it did not accept (ModelNotAllowed).
	local bool
	at    time.Time
}

// Importer runs the local side.
type Importer struct {
	cfg   Config
	log   hclog.Logger
	queue workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu        sync.Mutex
	answers   map[link.ID]*received
	published map[link.ID]string // link -> peer its import request went to
	statuses  map[link.ID]*peerv1.LinkStatus
	// caps are the capabilities each peer announced when it last connected; caGroups the
	// CAStatus resources published (castatus.go).
	caps     map[string][]string
	caGroups caStatuses

	signer signingAuthority

	// writes are the importer's own writes of its objects (echo.go).
	writes ownWrites
	// trig says what queued each full reconcile (trace.go).
	trig triggers
	// ca is the short path of CA-only changes (cafast.go).
	ca caPath
	// shared are the CA bundles peers share between links (exportca.go); under mu.
	shared exportCAs
	// pods marks the pods of an Elasticsearch as updated (pods.go).
	pods podMarker
	// licenses caches what GET /_license reports of local clusters (license.go).
	licenses *license.Cache
}

// New checks the configuration and returns an Importer.
func New(cfg Config) (*Importer, error) {
	var err error
	if cfg.Deps, err = cfg.Check("importer", halves.Required{Name: "Outbox", Missing: cfg.Outbox == nil}); err != nil {
		return nil, err
	}
	cfg.Pending = cmp.Or(cfg.Pending, 2*time.Second)
	cfg.SigningTick = cmp.Or(cfg.SigningTick, time.Minute)
	if cfg.Pods == nil {
		cfg.Pods = cfg.Kube
	}
	im := &Importer{
		cfg: cfg,
		log: cfg.Logger.Named("importer"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](500*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "importer"}),
		answers:   map[link.ID]*received{},
		published: map[link.ID]string{},
		statuses:  map[link.ID]*peerv1.LinkStatus{},
		licenses:  &license.Cache{TTL: licenseTTL, Retry: licenseRetry, Now: cfg.Now},
	}
	im.ca.init()
	im.pods.init()
	if err := im.registerHandlers(); err != nil {
		return nil, err
	}
	if err := im.registerTransportCAHandler(); err != nil {
		return nil, err
	}
	return im, nil
}

// workers drain the queue side by side, each Elasticsearch on one at a time: an Elasticsearch
// that does not answer holds up only its own links (each request waits at most
// elastic.DefaultRequestTimeout).
const workers = 4

// conflictRetry is how soon a pass that lost a write race runs again.
const conflictRetry = 20 * time.Millisecond

// Run drains the queue with its workers until ctx ends.
func (im *Importer) Run(ctx context.Context) error {
	go im.runCAPath(ctx)
	go im.runPodMarker(ctx)
	go task.Every(ctx, im.cfg.Resync, func() { im.enqueueAll(trigResync) })
	go task.Every(ctx, im.cfg.SigningTick, func() { im.tickSigningOrWarn(ctx) })
	im.enqueueAll(trigStart)
	worker.Run(ctx, im.queue, workers, im.process)
	return ctx.Err()
}

// process runs one pass of key and decides when it runs again; worker.Run marks it done.
func (im *Importer) process(ctx context.Context, key types.NamespacedName) {
	why := im.trig.Take(key)
	im.trig.passes.Add(1)
	im.trig.running.Add(1)
	defer im.trig.running.Add(-1)
	start := time.Now()
	requeue, err := im.reconcile(ctx, key)
	im.log.Debug("reconciled", "elasticsearch", key.String(), "trigger", why, "duration", time.Since(start), "error", err)
	switch {
	case apierrors.IsConflict(err):
		// Another pass (the CA path) wrote the object first: decide again on its content, now.
		im.log.Debug("object changed meanwhile, reconciling again", "elasticsearch", key.String(), "error", err)
		im.queue.Forget(key)
		im.trig.Note(key, trigConflict)
		im.queue.AddAfter(key, conflictRetry)
		return
	case err != nil:
		im.cfg.Metrics.ReconcileError("importer")
		im.log.Warn("reconcile failed, will retry", "elasticsearch", key.String(), "error", err)
	}
	im.trig.Again(im.queue, key, requeue, err != nil)
}

// tickSigningOrWarn advances the signing CA rotation (see tickSigning); a failure is retried on
// the next tick.
func (im *Importer) tickSigningOrWarn(ctx context.Context) {
	if err := im.tickSigning(ctx); err != nil {
		im.log.Warn("signing CA rotation failed, will retry", "error", err)
	}
}

// enqueueAll queues every local Elasticsearch that has RemoteClusters or the agent's objects.
func (im *Importer) enqueueAll(why string) {
	for _, rc := range im.cfg.Cache.RemoteClustersShared() {
		im.enqueue(types.NamespacedName{Namespace: rc.Namespace, Name: rc.Spec.ElasticsearchRef.Name}, why)
	}
	for _, cm := range im.cfg.Cache.OwnConfigMaps(caSelector) {
		if es := cm.Labels[labelElasticsearch]; es != "" {
			im.enqueue(types.NamespacedName{Namespace: cm.Namespace, Name: es}, why)
		}
	}
}

func (im *Importer) registerHandlers() error {
	// The agent's own status writes come back as status-only updates, ECK's on the Elasticsearch
	// too: only the other changes queue a pass.
	if err := im.cfg.Cache.OnRemoteCluster(cache.SpecChanges(func(o any) {
		if ref, ok := cache.ElasticsearchRef(o); ok {
			im.enqueue(ref, trigRC)
		}
	})); err != nil {
		return err
	}
	if err := im.cfg.Cache.OnElasticsearch(cache.SpecChanges(func(o any) {
		if key, ok := cache.Key(o); ok {
			im.enqueue(key, trigES)
		}
	})); err != nil {
		return err
	}
	return im.cfg.Cache.OnOwnObject(func(old, new any) {
		if im.ownObjectEcho(old, new) {
			return
		}
		for _, o := range []any{old, new} {
			if m, ok := o.(metav1.Object); ok {
				if es := m.GetLabels()[labelElasticsearch]; es != "" {
					im.enqueue(types.NamespacedName{Namespace: m.GetNamespace(), Name: es}, trigOwnObject+":"+m.GetName())
				}
			}
		}
	})
}
