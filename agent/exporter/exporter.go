// Package exporter is the remote side of a link: for each link a peer imports from a
// ClusterExport that grants it, it answers with what the export's security model gives. With the
// API-key model it keeps one cross-cluster API key in the exported Elasticsearch (created,
// updated in place when the access changes, rotated make-before-break before it expires,
// invalidated when the link, the export or the peering goes), and streams the encoded key with
// the transport CA bundle, the proxy address and the server name to the peer; with the
// certificate model it adds the peer's transport CA to the exported Elasticsearch's transport
// trust instead (certmodel.go).
//
// What is common to every link (the grant, the caps, the model both sides must agree on, the
// publication of the answer or the refusal, the export's status) is written once; what a model
// does is behind one interface, securityModel (model.go), implemented by apiKeyModel
// (apikeymodel.go) and certificateModel (certmodel.go) and chosen once per export by modelOf.
// Adding a third model means one new implementation listed in models, plus its value in the API
// enum (v1alpha1.SecurityModel) and on the wire (peerv1.SecurityModel).
package exporter

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/internal/task"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Outbox sends resources to peers (halves.Outbox) and restarts a stream.
type Outbox interface {
	halves.Outbox
	// Resync restarts the stream with peer, which then resends what this agent refused.
	Resync(peer string)
}

// Config configures the Exporter: what both halves are built from (the environment name is
// recorded in key metadata; Resync re-checks every link and export), and the exporter's own.
type Config struct {
	halves.Deps
	Outbox Outbox
	// SigningSyncDelay is how long after a write of the signing CA ConfigMap every node sees
	// the new file (the kubelet's sync period plus its cache TTL). Default 90s.
	SigningSyncDelay time.Duration
	// LinksPerPeer and LinksPerExport cap the links a peer may hold (granted or refused) and
	// an export may serve; DefaultLinksPerPeer and DefaultLinksPerExport if 0.
	LinksPerPeer, LinksPerExport int
	// RotateNowInterval is the least time between two rotations of a link's key made on the
	// peer's request (agentctl rotate key); DefaultRotateNowInterval if 0.
	RotateNowInterval time.Duration
	// Lag says when a consumer lags behind a rotation (lag.go); zero fields take the defaults.
	Lag LagConfig
	// CertificateModel lets exports with the certificate security model serve their peers
	// (agent setting certificateModel.enabled). Off, such exports refuse every import.
	CertificateModel bool
}

// item is one unit of work: a link of a peer, an export, or a sweep for unused keys.
type item struct {
	kind string // "link", "ca", "export", "gc", "gone"
	peer string
	link link.ID
	ns   string
	name string
}

// Exporter runs the remote side.
type Exporter struct {
	cfg   Config
	log   hclog.Logger
	queue workqueue.TypedRateLimitingInterface[item]
	// trig says what queued each item (trace.go).
	trig triggers

	mu    sync.Mutex
	links map[string]map[link.ID]*linkState // peer -> link -> state
	// early holds link statuses that arrived before their import request (a stream opening
	// with many updates delivers them out of order when some are rate limited); the import
	// picks its status up. Bounded by maxEarlyStatuses per peer.
	early map[string]map[link.ID]*peerv1.LinkStatus
	// caStatus are the CAStatus messages each peer sent, by group (castatus.go); at most
	// LinksPerPeer per peer.
	caStatus map[string]map[link.CAGroup]*peerv1.CAStatus
	encoded  map[string]elastic.Secret // API key id -> encoded key, memory only
	inventry map[string]bool           // peers whose inventory arrived since they connected
	// listed are the imports each peer listed in its last inventory (at most LinksPerPeer): the
	// sweep keeps their keys while their import requests are on their way again (resent after a
	// restart, or held back by the rate limit), and invalidates the keys of links it no longer lists.
	listed map[string]map[link.ID]bool
	// gone are links the peer removed before this process held them (a removal resent after a
	// restart): their keys are looked up and invalidated by a "gone" item (gone.go). At most
	// maxEarlyStatuses per peer; beyond, a sweep covers them.
	gone   map[string]map[link.ID]bool
	health keyHealth // why a link's keys last failed, for the export status
	// refused holds what is kept of import requests refused on receipt; together with links
	// at most LinksPerPeer per peer.
	refused  map[string]map[link.ID]refusedLink
	resynced map[string]time.Time // when each peer was last asked to resend refused requests
	grants   grants               // the informer cache
	// caps are the capabilities each peer announced when it last connected.
	caps map[string][]string
	// pubMu orders publications that carry a CA bundle (exportca.go).
	pubMu sync.Mutex
	// gate runs one item per Elasticsearch at a time (workers.go).
	gate gate
	// licenses caches what GET /_license reports of exported clusters (license.go).
	licenses *license.Cache
	// snaps serves the periodic passes' key listings (keysnapshot.go).
	snaps *keySnapshots
	// ownCAs parses each exported Elasticsearch's transport CA once (not once per link pass).
	ownCAs transporttrust.OwnCAs
	// lagSeries are the peers with an ecklink_link_peer_lag_seconds series, by export (lag.go).
	lagMu     sync.Mutex
	lagSeries map[string]map[string]bool
}

// linkState is what the exporter knows of one link of one peer.
type linkState struct {
	req     *peerv1.ImportRequest
	removed bool
	status  *peerv1.LinkStatus
	// target is the exported Elasticsearch the link's keys live in, once known.
	target *elastic.Target
	// export is "namespace/name" of the export last used.
	export string
	// last published answer, for the export status
	keyID   string
	created time.Time
	expires time.Time
	refusal string
	// sent is the last credentials sent, for CA-only updates without Elasticsearch calls.
	sent *peerv1.Credentials
	// caSent records when each CA fingerprint was first sent, until the peer reports it applied.
	caSent map[string]time.Time
	// caExpiry is the NotAfter of every CA sent that is current or that the peer reports
	// applied, by fingerprint (lag.go).
	caExpiry map[string]time.Time
	// keyExpiry is the expiry of each live key of the link, by id (zero: never expires).
	keyExpiry map[string]time.Time
	// lagging is the link's last lag verdict (lagReasons), to reconcile the export when it
	// changes.
	lagging string
	// caRef is the shared CA bundle the credentials last sent name ("" for a bundle inline).
	caRef string
	// trust is the peer CA added to the transport trust for the link (certificate model).
	trust *heldTrust
	// periodic says the running pass was queued by the resync alone: it may read the link's keys
	// from the resync's snapshot (keysnapshot.go).
	periodic bool
	// statusOnly says the running pass was queued by the peer's link status (and perhaps the
	// resync): it may read the keys the link's last pass left (kept, keys.go).
	statusOnly bool
	kept       *keptKeys
	// siStep is the link's strong identity step ("" without strong identity).
	siStep string
	// license is the last license verdict of the link (license.go).
	license license.Verdict
}

// New checks the configuration and returns an Exporter.
func New(cfg Config) (*Exporter, error) {
	var err error
	if cfg.Deps, err = cfg.Check("exporter", halves.Required{Name: "Outbox", Missing: cfg.Outbox == nil}); err != nil {
		return nil, err
	}
	cfg.SigningSyncDelay = cmp.Or(cfg.SigningSyncDelay, 90*time.Second)
	if cfg.RotateNowInterval <= 0 {
		cfg.RotateNowInterval = DefaultRotateNowInterval
	}
	cfg.Lag = cfg.Lag.withDefaults()
	if cfg.LinksPerPeer <= 0 {
		cfg.LinksPerPeer = DefaultLinksPerPeer
	}
	if cfg.LinksPerExport <= 0 {
		cfg.LinksPerExport = DefaultLinksPerExport
	}
	e := &Exporter{
		cfg: cfg,
		log: cfg.Logger.Named("exporter"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[item](500*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "exporter"}),
		links:    map[string]map[link.ID]*linkState{},
		early:    map[string]map[link.ID]*peerv1.LinkStatus{},
		caStatus: map[string]map[link.CAGroup]*peerv1.CAStatus{},
		encoded:  map[string]elastic.Secret{},
		inventry: map[string]bool{},
		listed:   map[string]map[link.ID]bool{},
		gone:     map[string]map[link.ID]bool{},
		refused:  map[string]map[link.ID]refusedLink{},
		resynced: map[string]time.Time{},
		grants:   cfg.Cache,
		caps:     map[string][]string{},
		licenses: &license.Cache{TTL: licenseTTL, Retry: licenseRetry, Now: cfg.Now},
		snaps:    newKeySnapshots(cfg.Resync/2, cfg.Now),
	}
	if err := e.registerHandlers(); err != nil {
		return nil, err
	}
	return e, nil
}

// Run drains the queue with its workers until ctx ends (workers.go).
func (e *Exporter) Run(ctx context.Context) error {
	go task.Every(ctx, e.cfg.Resync, func() {
		e.enqueueAll()
		e.enqueue(item{kind: "gc"}, trigResync)
	})
	e.runWorkers(ctx)
	return ctx.Err()
}

// process runs one pass of it and decides when it runs again; the worker marks it done.
func (e *Exporter) process(ctx context.Context, it item) {
	why := e.trig.Take(it)
	if it.kind == "link" {
		e.trig.linkPasses.Add(1)
	}
	start := time.Now()
	var (
		requeue time.Duration
		err     error
	)
	defer func() {
		e.log.Debug("processed", "kind", it.kind, "peer", it.peer, "link", it.link.String(), "export", it.ns+"/"+it.name, "trigger", why, "duration", time.Since(start), "error", err)
	}()
	switch it.kind {
	case "link":
		e.mu.Lock()
		if st := e.links[it.peer][it.link]; st != nil {
			st.periodic, st.statusOnly = periodic(why), statusOnly(why)
		}
		e.mu.Unlock()
		requeue, err = e.reconcileLink(ctx, it.peer, it.link)
	case "ca":
		requeue, err = e.republishCA(ctx, it.peer, it.link)
	case "exportca":
		requeue, err = e.republishExportCA(it.peer, it.ns, it.name)
	case "export":
		requeue, err = e.reconcileExport(ctx, it.ns, it.name)
	case "gc":
		err = e.collectGarbage(ctx)
	case "gone":
		err = e.invalidateGone(ctx, it.peer)
	}
	e.noteResult(it, err)
	e.requeue(it, requeue, err)
}

// requeue puts an item back after a pass: with backoff after an error (counted and warned about
// unless it only waits, errRetry), after requeue when the pass asked for it, never otherwise.
func (e *Exporter) requeue(it item, requeue time.Duration, err error) {
	switch {
	case errors.Is(err, errWaitForStatus):
		// The peer's link status queues the link when it comes (OnLinkStatus), and the resync
		// does if it never comes: no retries in between. After a restart at 1,000 links they
		// were 1,730 passes, each listing its link's keys, in the way of the passes that answer.
		e.log.Debug("waiting for the peer's link status", "peer", it.peer, "link", it.link.String())
		e.queue.Forget(it)
		return
	case errors.Is(err, errRetry):
		// Waiting for something that comes by itself (ECK's Secret, the peer's status): not a
		// failure to count or warn about, retried with the same backoff.
		e.log.Debug("waiting, will retry", "kind", it.kind, "peer", it.peer, "link", it.link.String(), "export", it.ns+"/"+it.name, "error", err)
	case err != nil:
		e.cfg.Metrics.ReconcileError("exporter")
		e.log.Warn("reconcile failed, will retry", "kind", it.kind, "peer", it.peer, "link", it.link.String(), "export", it.ns+"/"+it.name, "error", err)
	}
	e.trig.Again(e.queue, it, requeue, err != nil)
}

func (e *Exporter) enqueueAll() {
	e.mu.Lock()
	for peer, links := range e.links {
		for id := range links {
			e.enqueue(item{kind: "link", peer: peer, link: id}, trigResync)
		}
	}
	e.mu.Unlock()
	for _, exp := range e.cfg.Cache.ClusterExports() {
		e.enqueue(item{kind: "export", ns: exp.Namespace, name: exp.Name}, trigResync)
	}
	e.resyncRefused()
}

// periodic says whether a pass was queued by the resync alone. A pass noted for a later
// requeue (a key's rotation time) counts too: the note is made when the pass is scheduled, so
// most items carry it at their next resync.
func periodic(why string) bool {
	for w := range strings.SplitSeq(why, ",") {
		if w != trigResync && w != trigRequeue {
			return false
		}
	}
	return strings.Contains(why, trigResync)
}

// statusOnly says whether a pass was queued by the peer's link status, with nothing but the
// resync's or a requeue's note beside it.
func statusOnly(why string) bool {
	for w := range strings.SplitSeq(why, ",") {
		if w != trigStatus && w != trigResync && w != trigRequeue {
			return false
		}
	}
	return strings.Contains(why, trigStatus)
}

// errRetry marks a condition that resolves by itself (e.g. ECK has not created a Secret yet):
// process retries it with backoff, without counting it as a reconcile error.
var errRetry = errors.New("not ready")
