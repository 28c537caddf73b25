package exporter

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// What a paired peer sends the remote side is bounded on receipt, before anything is kept: an
// import request for a link this agent does not hold yet is checked against the grants in the
// informer cache (no API call) and the link caps, and a refused one leaves at most a
// refusedLink (the export it asked for and why) and the Refusal sent back.

// Reasons of the Nacks this half answers the peer's updates with (agent/metrics/reasons.go).
const (
	// ReasonLinkLimitExceeded refuses a link beyond limits.linksPerPeer or limits.linksPerExport.
	ReasonLinkLimitExceeded = "LinkLimitExceeded"
	// ReasonInvalidImport refuses a malformed import request.
	ReasonInvalidImport = "InvalidImport"
	// ReasonInvalidLinkStatus refuses a malformed link status, or one too many.
	ReasonInvalidLinkStatus = "InvalidLinkStatus"
)

// invalid refuses a malformed update with reason; the peer reads err's words.
func invalid(reason string, err error) error {
	return &peering.RefusalError{Reason: reason, Message: err.Error()}
}

// Default caps (the agent's limits.* settings).
const (
	DefaultLinksPerPeer   = 1000
	DefaultLinksPerExport = 1000
)

// Receipt bounds.
const (
	maxStatusMessageLen = 1024
	maxSigningSubject   = 1024
	// maxStatusLinks bounds ClusterExport status.links (the first links, sorted; linkCount
	// says how many there are).
	maxStatusLinks = 100
	// minResyncGap spaces the reconnections that ask a peer to resend refused requests.
	minResyncGap = 30 * time.Second
)

// grants is what the receipt reads to decide whether a peer may hold a link: the informer
// cache, so that a flood of requests costs no API call.
type grants interface {
	Peer(environment string) (*v1alpha1.Peer, bool)
	ClusterExport(ns, name string) (*v1alpha1.ClusterExport, bool)
	ClusterExports() []*v1alpha1.ClusterExport
}

// refusedLink is everything kept of an import request refused on receipt.
type refusedLink struct {
	export string // namespace/name asked for
	reason string
	// resyncs counts the stream restarts that asked the peer to resend the request since it
	// became admissible; a peer that does not resend it loses the record after maxResyncs.
	resyncs int
}

// maxResyncs bounds the stream restarts made for one refused link.
const maxResyncs = 2

// validateImport checks the fields of an import request a peer sent, naming the bad one.
func validateImport(req *peerv1.ImportRequest) error {
	switch ns, name := req.GetExportNamespace(), req.GetExportName(); {
	case len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0:
		return fmt.Errorf("invalid import request: export %q/%q: want namespace/name of a ClusterExport", clip(ns, 64), clip(name, 253))
	case !link.ValidVersion(req.GetElasticsearchVersion()):
		return fmt.Errorf("invalid import request: elasticsearch_version %q: want a version such as 9.3.2, at most %d characters", clip(req.GetElasticsearchVersion(), link.MaxVersionLen), link.MaxVersionLen)
	case len(req.GetTransportCaBundle()) > 256<<10:
		return fmt.Errorf("invalid import request: transport_ca_bundle is %d bytes, at most 262144 allowed", len(req.GetTransportCaBundle()))
	case len(req.GetSigningSubject()) > maxSigningSubject:
		return fmt.Errorf("invalid import request: signing_subject is %d bytes, at most %d allowed", len(req.GetSigningSubject()), maxSigningSubject)
	}
	if _, err := license.FromProto(req.GetElasticsearchLicense()); err != nil {
		return fmt.Errorf("invalid import request: elasticsearch_license %w", err)
	}
	if err := v1alpha1.ValidRotationRequest("key_rotation_request", req.GetKeyRotationRequest()); err != nil {
		return fmt.Errorf("invalid import request: %w", err)
	}
	return nil
}

// validateLinkStatus checks the fields of a link status a peer sent, naming the bad one.
func validateLinkStatus(s *peerv1.LinkStatus) error {
	for name, id := range map[string]string{"applied_api_key_id": s.GetAppliedApiKeyId(), "written_api_key_id": s.GetWrittenApiKeyId()} {
		if id != "" && !link.ValidAPIKeyID(id) {
			return fmt.Errorf("invalid link status: %s %q: want 1-64 URL-safe base64 characters", name, clip(id, 64))
		}
	}
	if err := link.CheckFingerprints("applied_ca_fingerprints", s.GetAppliedCaFingerprints()); err != nil {
		return fmt.Errorf("invalid link status: %w", err)
	}
	if n := len(s.GetMessage()); n > maxStatusMessageLen {
		return fmt.Errorf("invalid link status: message is %d bytes, at most %d allowed", n, maxStatusMessageLen)
	}
	if n := len(s.GetSigningSubject()); n > maxSigningSubject {
		return fmt.Errorf("invalid link status: signing_subject is %d bytes, at most %d allowed", n, maxSigningSubject)
	}
	return nil
}

// admitLocked decides whether the peer may hold a new link: it must be paired, the export must
// exist and name it, and neither cap may be reached. nil admits; e.mu is held. A refused
// record of the link itself does not count against the peer's cap.
func (e *Exporter) admitLocked(peer string, id link.ID, ns, name string) *peering.RefusalError {
	if ref := e.grantRefusal(peer, id, ns, name); ref != nil {
		return ref
	}
	n := e.peerLinksLocked(peer)
	if _, ok := e.refused[peer][id]; ok {
		n--
	}
	if n >= e.cfg.LinksPerPeer {
		return &peering.RefusalError{Reason: ReasonLinkLimitExceeded, Message: fmt.Sprintf(
			"environment %s already holds %d links on environment %s, the most limits.linksPerPeer allows", peer, n, e.cfg.Environment)}
	}
	if n := e.exportLinksLocked(ns, name); n >= e.cfg.LinksPerExport {
		return &peering.RefusalError{Reason: ReasonLinkLimitExceeded, Message: fmt.Sprintf(
			"ClusterExport %s/%s already serves %d links, the most limits.linksPerExport allows", ns, name, n)}
	}
	return nil
}

// grantRefusal answers whether the export ns/name serves link id of peer (spec.peers names the
// peer, or a grant names the link's namespace and Elasticsearch), from the informer cache. The
// answer is the same whether the export is missing or does not serve the link, so that a peer
// cannot probe what this environment exports.
func (e *Exporter) grantRefusal(peer string, id link.ID, ns, name string) *peering.RefusalError {
	if _, ok := e.grants.Peer(peer); !ok {
		return &peering.RefusalError{Reason: v1alpha1.ReasonPeerNotFound, Message: "environment " + peer + " is not a peer"}
	}
	exp, ok := e.grants.ClusterExport(ns, name)
	if !ok || exp.DeletionTimestamp != nil || !exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch) {
		return &peering.RefusalError{Reason: v1alpha1.ReasonPeerNotGranted, Message: fmt.Sprintf(
			"no ClusterExport %s/%s grants access to environment %s", ns, name, peer)}
	}
	return nil
}

// peerLinksLocked counts the links a peer holds: kept requests and refused records.
func (e *Exporter) peerLinksLocked(peer string) int {
	return len(e.links[peer]) + len(e.refused[peer])
}

// exportLinksLocked counts the links served from export ns/name, over all peers.
func (e *Exporter) exportLinksLocked(ns, name string) int {
	n := 0
	for _, links := range e.links {
		for _, st := range links {
			if st.req != nil && !st.removed && st.req.GetExportNamespace() == ns && st.req.GetExportName() == name {
				n++
			}
		}
	}
	return n
}

// refuseOnReceipt keeps a record of a refused request, while the peer holds fewer links than
// limits.linksPerPeer, and sends the Refusal; beyond that, nothing is kept and the peer only
// gets the Nack. Either way the request itself is refused with a Nack: it is not kept, so the
// peer sends it again on its next session (when the grant may exist).
func (e *Exporter) refuseOnReceipt(peer string, id link.ID, ns, name string, ref *peering.RefusalError) error {
	e.mu.Lock()
	_, had := e.refused[peer][id]
	kept := had || e.peerLinksLocked(peer) < e.cfg.LinksPerPeer
	if kept {
		if e.refused[peer] == nil {
			e.refused[peer] = map[link.ID]refusedLink{}
		}
		e.refused[peer][id] = refusedLink{export: ns + "/" + name, reason: ref.Reason}
	}
	e.mu.Unlock()
	if kept {
		if err := e.cfg.Outbox.Publish(peer, link.Resource(link.KindCredentials, id), refusalFor(id, ref)); err != nil {
			e.log.Warn("failed to send a refusal", "peer", peer, "link", id.String(), "error", err)
		}
		if !had && ref.Reason == v1alpha1.ReasonPeerNotGranted {
			if exp, ok := e.grants.ClusterExport(ns, name); ok && exp.DeletionTimestamp == nil {
				e.cfg.Recorder.Event(exp, corev1.EventTypeWarning, v1alpha1.ReasonPeerNotGranted,
					fmt.Sprintf("refused environment %s (link %s): not granted by spec.peers or spec.grants", peer, id))
			}
		}
	}
	return ref
}

// refusalFor is the Refusal message that tells the peer why link id gets no credentials: the
// words of ref, which the peer's RemoteCluster conditions show.
func refusalFor(id link.ID, ref *peering.RefusalError) *peerv1.Refusal {
	return &peerv1.Refusal{Link: id.Proto(), Reason: ref.Reason, Message: ref.Message}
}

// dropRefused forgets the refused record of a link and withdraws its Refusal.
func (e *Exporter) dropRefused(peer string, id link.ID) {
	e.mu.Lock()
	_, had := e.refused[peer][id]
	delete(e.refused[peer], id)
	e.mu.Unlock()
	if had {
		_ = e.cfg.Outbox.Remove(peer, link.Resource(link.KindCredentials, id))
	}
}

// resyncRefused asks each peer with a refused link that would now be admitted (the export
// grants it now, or a cap has room again) to send its requests again. The peer resends what
// this agent refused when its stream reopens, so the stream is restarted, at most once per
// minResyncGap per peer.
func (e *Exporter) resyncRefused() {
	now := e.cfg.Now()
	var due []string
	var stale []healthKey
	e.mu.Lock()
	for peer, recs := range e.refused {
		if now.Sub(e.resynced[peer]) < minResyncGap {
			continue
		}
		admissible := false
		for id, r := range recs {
			ns, name, _ := strings.Cut(r.export, "/")
			if e.admitLocked(peer, id, ns, name) != nil {
				continue
			}
			if r.resyncs >= maxResyncs {
				stale = append(stale, healthKey{peer: peer, link: id})
				continue
			}
			r.resyncs++
			recs[id] = r
			admissible = true
		}
		if admissible {
			due = append(due, peer)
			e.resynced[peer] = now
		}
	}
	e.mu.Unlock()
	for _, k := range stale {
		e.log.Info("the peer did not send a refused request again; forgetting it", "peer", k.peer, "link", k.link.String())
		e.dropRefused(k.peer, k.link)
	}
	sort.Strings(due)
	for _, peer := range due {
		e.log.Info("a refused link can be granted now; restarting the stream so that the peer sends its request again", "peer", peer)
		e.cfg.Outbox.Resync(peer)
	}
}
