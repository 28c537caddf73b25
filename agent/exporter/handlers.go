package exporter

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/peertext"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// OnImport records an import request from a peer. A *peering.RefusalError refuses the update (a
// Nack): the request is malformed, or it asks for a link this agent does not hold yet and the
// export does not grant it or a cap is reached (then a Refusal says why, and nothing of the
// request is kept). A granted request is answered later, on the stream.
func (e *Exporter) OnImport(peer string, req *peerv1.ImportRequest) error {
	id, err := link.FromProto(req.GetLink())
	if err != nil {
		return invalid(ReasonInvalidImport, fmt.Errorf("invalid import request: %w", err))
	}
	if err := validateImport(req); err != nil {
		return invalid(ReasonInvalidImport, err)
	}
	if err := validateSigning(peer, id, req, e.cfg.Now); err != nil {
		return invalid(ReasonInvalidImport, err)
	}
	e.mu.Lock()
	st, held := e.links[peer][id]
	if !held {
		if ref := e.admitLocked(peer, id, req.GetExportNamespace(), req.GetExportName()); ref != nil {
			e.mu.Unlock()
			return e.refuseOnReceipt(peer, id, req.GetExportNamespace(), req.GetExportName(), ref)
		}
		st = e.stateLocked(peer, id)
	}
	_, wasRefused := e.refused[peer][id]
	delete(e.refused[peer], id) // the credentials answer replaces the Refusal sent
	st.req = req
	st.removed = false
	if early, ok := e.early[peer][id]; ok {
		if st.status == nil {
			st.status = early
		}
		delete(e.early[peer], id)
	}
	e.mu.Unlock()
	if wasRefused {
		e.log.Info("a link refused before is granted now", "peer", peer, "link", id.String())
	}
	e.enqueue(item{kind: "link", peer: peer, link: id}, trigImport)
	return nil
}

// OnImportRemoved records that the peer no longer imports the link: its keys are invalidated.
func (e *Exporter) OnImportRemoved(peer string, id link.ID) {
	e.dropRefused(peer, id)
	e.mu.Lock()
	st, known := e.links[peer][id]
	if known {
		st.removed = true
	}
	delete(e.early[peer], id)
	delete(e.listed[peer], id)
	tracked := !known && e.markGoneLocked(peer, id)
	e.mu.Unlock()
	switch {
	case known:
		e.enqueue(item{kind: "link", peer: peer, link: id}, trigImportGone)
	case tracked:
		// Removed before this process saw its import (the peer sends only the latest state of
		// each resource after a restart): the keys made for it before are looked up (gone.go).
		e.enqueue(item{kind: "gone", peer: peer}, trigImportGone)
	default:
		e.enqueue(item{kind: "gc"}, trigImportGone)
	}
}

// maxEarlyStatuses bounds the link statuses held per peer for imports that have not arrived.
const maxEarlyStatuses = 4096

// OnLinkStatus records what the peer applied; a connected link with a new key lets the old keys go.
// A malformed status, or one too many for links not imported yet, is a *peering.RefusalError.
func (e *Exporter) OnLinkStatus(peer string, s *peerv1.LinkStatus) error {
	id, err := link.FromProto(s.GetLink())
	if err != nil {
		return invalid(ReasonInvalidLinkStatus, fmt.Errorf("invalid link status: %w", err))
	}
	if err := validateLinkStatus(s); err != nil {
		return invalid(ReasonInvalidLinkStatus, err)
	}
	e.mu.Lock()
	st, ok := e.links[peer][id]
	if !ok {
		defer e.mu.Unlock()
		if _, held := e.early[peer][id]; !held && len(e.early[peer]) >= maxEarlyStatuses {
			return invalid(ReasonInvalidLinkStatus, fmt.Errorf("link status for %s, which the peer never imported (and %d others wait for their import)", id, maxEarlyStatuses))
		}
		if e.early[peer] == nil {
			e.early[peer] = map[link.ID]*peerv1.LinkStatus{}
		}
		e.early[peer][id] = s
		e.log.Debug("link status before its import request, held for it", "peer", peer, "link", id.String())
		return nil
	}
	s = e.withCAStatusLocked(peer, id, st, s) // castatus.go
	reconcile, export := e.recordStatusLocked(st, s)
	e.mu.Unlock()
	if reconcile {
		e.enqueue(item{kind: "link", peer: peer, link: id}, trigStatus)
	}
	if export.kind != "" {
		e.queue.Add(export)
	}
	return nil
}

// recordStatusLocked records what the peer reports of a held link: the propagation of each CA
// it applied, and a new lag verdict. It returns whether the link needs its reconcile and the
// export to queue when the verdict changed. e.mu is held.
func (e *Exporter) recordStatusLocked(st *linkState, s *peerv1.LinkStatus) (reconcile bool, export item) {
	reconcile = statusNeedsReconcile(st.status, s) // exportca.go
	lagCA := lagInputChanged(st.status, s)
	st.status = s
	now := e.cfg.Now()
	for _, fp := range s.GetAppliedCaFingerprints() {
		if sent, ok := st.caSent[fp]; ok && !sent.IsZero() {
			e.cfg.Metrics.Propagation(now.Sub(sent))
			st.caSent[fp] = time.Time{} // observed once (and no longer lagging, lag.go)
		}
	}
	if lagCA && st.req != nil {
		es := st.req.GetExportName()
		if st.target != nil {
			es = st.target.Name
		}
		if e.relagLocked(st, e.currentCA(st.req.GetExportNamespace(), es)) {
			export = item{kind: "export", ns: st.req.GetExportNamespace(), name: st.req.GetExportName()}
		}
	}
	return reconcile, export
}

// lagInputChanged reports whether a link status changes what the lag check reads: the CAs or
// the key applied.
func lagInputChanged(prev, next *peerv1.LinkStatus) bool {
	return prev == nil || prev.GetAppliedApiKeyId() != next.GetAppliedApiKeyId() || prev.GetWrittenApiKeyId() != next.GetWrittenApiKeyId() ||
		!slices.Equal(prev.GetAppliedCaFingerprints(), next.GetAppliedCaFingerprints())
}

// OnInventory drops the imports a peer no longer lists (removed while the stream was down).
// The list comes from the peer: only the links held here are marked, so memory stays bounded
// by what this agent holds, whatever the peer lists.
func (e *Exporter) OnInventory(peer string, resources []string) {
	listed := map[link.ID]bool{}
	imports := map[link.ID]bool{}
	e.mu.Lock()
	for _, r := range resources {
		if kind, id, err := link.ParseResource(r); err == nil && kind == link.KindImport {
			if len(imports) < e.cfg.LinksPerPeer {
				imports[id] = true
			}
			_, held := e.links[peer][id]
			_, early := e.early[peer][id]
			_, refused := e.refused[peer][id]
			if held || early || refused {
				listed[id] = true
			}
		}
	}
	var gone []link.ID
	for id := range e.refused[peer] {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	e.inventry[peer] = true
	e.listed[peer] = imports
	for id := range e.early[peer] {
		if !listed[id] {
			delete(e.early[peer], id)
		}
	}
	for id, st := range e.links[peer] {
		if !listed[id] && !st.removed {
			st.removed = true
			e.enqueue(item{kind: "link", peer: peer, link: id}, trigInventory)
		}
	}
	e.mu.Unlock()
	for _, id := range gone {
		e.dropRefused(peer, id)
	}
	// What the peer holds is known now: keys of links removed while this agent was down (or
	// before this process saw their import) go at once, not at the next resync.
	e.enqueue(item{kind: "gc"}, trigInventory)
}

// PeerGone invalidates everything issued to a peer whose peering ended.
func (e *Exporter) PeerGone(peer string) {
	e.mu.Lock()
	delete(e.early, peer)
	delete(e.caStatus, peer)
	delete(e.listed, peer)
	delete(e.gone, peer)
	delete(e.refused, peer)
	delete(e.resynced, peer)
	for id, st := range e.links[peer] {
		st.removed = true
		e.enqueue(item{kind: "link", peer: peer, link: id}, trigPeerGone)
	}
	e.mu.Unlock()
	e.enqueue(item{kind: "gc"}, trigPeerGone)
}

// noteCAsSent remembers when each CA of a bundle was first sent to the peer, for the
// propagation metric.
func (e *Exporter) noteCAsSent(st *linkState, bundle []byte) {
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		return
	}
	e.mu.Lock()
	if st.caSent == nil {
		st.caSent = map[string]time.Time{}
	}
	if st.caExpiry == nil {
		st.caExpiry = map[string]time.Time{}
	}
	current := map[string]bool{}
	fresh := false
	for _, c := range certs {
		fp := pemutil.Fingerprint(c)
		current[fp] = true
		st.caExpiry[fp] = c.NotAfter
		if _, ok := st.caSent[fp]; !ok {
			st.caSent[fp] = e.cfg.Now()
			fresh = true
		}
	}
	for fp := range st.caSent {
		if !current[fp] {
			delete(st.caSent, fp)
		}
	}
	// The expiry of a CA no longer sent is kept while the peer reports it applied: it says
	// when the peer's trust ends.
	for fp := range st.caExpiry {
		if !current[fp] && (st.status == nil || !slices.Contains(st.status.GetAppliedCaFingerprints(), fp)) {
			delete(st.caExpiry, fp)
		}
	}
	var export item
	if fresh && st.req != nil {
		export = item{kind: "export", ns: st.req.GetExportNamespace(), name: st.req.GetExportName()}
	}
	e.mu.Unlock()
	if export.kind != "" {
		// The peer has the grace period to apply it: judged again then, whether or not it
		// reports anything meanwhile.
		e.queue.AddAfter(export, e.cfg.Lag.withDefaults().CAGrace+time.Second)
	}
}

// AppliedSequences is empty: import requests are requests, replayed in full after a restart.
func (e *Exporter) stateLocked(peer string, id link.ID) *linkState {
	links := e.links[peer]
	if links == nil {
		links = map[link.ID]*linkState{}
		e.links[peer] = links
	}
	st := links[id]
	if st == nil {
		st = &linkState{}
		links[id] = st
	}
	return st
}

func (e *Exporter) registerHandlers() error {
	// The export's status is the exporter's own write, the Elasticsearch's is ECK's: only the
	// other changes queue work.
	byKey := func(enqueue func(namespace, name string)) cache.Handler {
		return cache.SpecChanges(func(o any) {
			if key, ok := cache.Key(o); ok {
				enqueue(key.Namespace, key.Name)
			}
		})
	}
	if err := e.cfg.Cache.OnClusterExport(byKey(e.enqueueExport)); err != nil {
		return err
	}
	if err := e.cfg.Cache.OnElasticsearch(byKey(e.enqueueElasticsearch)); err != nil {
		return err
	}
	return e.cfg.Cache.OnECKSecret(func(s *corev1.Secret) {
		if es, ok := eck.OfTransportCertsPublic(s.Name); ok {
			e.enqueueCA(s.Namespace, es)
		}
	})
}

// enqueueExport queues the export and every link that asks for it, and asks peers whose
// requests for it were refused to send them again if it grants them now.
func (e *Exporter) enqueueExport(ns, name string) {
	e.enqueue(item{kind: "export", ns: ns, name: name}, trigExport)
	e.mu.Lock()
	for peer, links := range e.links {
		for id, st := range links {
			if st.req != nil && st.req.GetExportNamespace() == ns && st.req.GetExportName() == name {
				e.enqueue(item{kind: "link", peer: peer, link: id}, trigExport)
			}
		}
	}
	e.mu.Unlock()
	e.resyncRefused()
}

// enqueueCA queues a CA-only update of every link served from an Elasticsearch: one per peer
// that takes shared bundles, one per link for the others (exportca.go).
func (e *Exporter) enqueueCA(ns, es string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for peer, links := range e.links {
		share := e.sharesCALocked(peer)
		for id, st := range links {
			if st.target == nil || st.target.Namespace != ns || st.target.Name != es {
				continue
			}
			if share {
				e.enqueue(item{kind: "exportca", peer: peer, ns: ns, name: es}, trigCA)
				break
			}
			e.enqueue(item{kind: "ca", peer: peer, link: id}, trigCA)
		}
	}
}

// enqueueElasticsearch queues every export of an Elasticsearch and their links.
func (e *Exporter) enqueueElasticsearch(ns, name string) {
	for _, exp := range e.cfg.Cache.ClusterExports() {
		if exp.Namespace == ns && exp.Spec.ElasticsearchRef.Name == name {
			e.enqueueExport(exp.Namespace, exp.Name)
		}
	}
}

// validateSigning checks an import request's strong identity material: a signing CA bundle of
// valid CA certificates, and the subject of the peer's own Elasticsearch (a peer may not ask for
// a key bound to another environment's signer). Both are empty from a consumer below 9.3.
func validateSigning(peer string, id link.ID, req *peerv1.ImportRequest, now func() time.Time) error {
	bundle, subject := req.GetSigningCaBundle(), req.GetSigningSubject()
	if len(bundle) == 0 && subject == "" {
		return nil
	}
	if len(bundle) == 0 || subject == "" {
		return errors.New("invalid import request: signing_ca_bundle and signing_subject must be set together")
	}
	if _, err := pemutil.ValidateCABundle(bundle, now(), pemutil.DefaultLimits); err != nil {
		return fmt.Errorf("invalid import request: signing_ca_bundle: %w", err)
	}
	if want := signing.SubjectFor(peer, id.Namespace, id.Elasticsearch).String(); subject != want {
		return fmt.Errorf("invalid import request: signing_subject %q: want %q, the subject of the link's own Elasticsearch", clip(subject, 256), want)
	}
	return nil
}

// clip bounds a peer-supplied string for an error message, a log or a status: printable
// characters only, at most n bytes and a "..." mark.
func clip(s string, n int) string { return peertext.Clean(s, n) }
