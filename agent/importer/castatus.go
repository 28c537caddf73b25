package importer

import (
	"crypto/x509"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The CA path's echo, local side. Once a CA-only change is in a consuming Elasticsearch's CA
// ConfigMap, the peers are told which CAs its links applied: a peer that announced "ca-status"
// gets one CAStatus per shared bundle (the links naming it in ca_ref), any other peer, and any
// link with its bundle inline, a LinkStatus per link as before. A link's LinkStatus is not sent
// again for CAs its group's CAStatus already reports (publishStatus asks coveredByCAStatus): the
// exporter merges the newer CAStatus into it, so the next full reconcile sends a LinkStatus only
// when something else changes.

// caGroup is a CAStatus published: the peer it went to and the CAs it reports.
type caGroup struct {
	peer string
	fps  []string
}

// caStatuses are the CAStatus resources published, by group (mu).
type caStatuses map[link.CAGroup]caGroup

// PeerConnected records the capabilities a peer announced when its stream opened. A peer that
// no longer reads CAStatus (rolled back to an older release) gets the links' own statuses again,
// which the CAStatus stood for, and the CAStatus resources are withdrawn.
func (im *Importer) PeerConnected(peer string, capabilities []string) {
	im.mu.Lock()
	if im.caps == nil {
		im.caps = map[string][]string{}
	}
	im.caps[peer] = slices.Clone(capabilities)
	var groups []link.CAGroup
	var statuses []*peerv1.LinkStatus
	if !slices.Contains(capabilities, peering.CapabilityCAStatus) {
		now := timestamppb.New(im.cfg.Now())
		for g, cg := range im.caGroups {
			if cg.peer != peer {
				continue
			}
			groups = append(groups, g)
			delete(im.caGroups, g)
			for id, r := range im.answers {
				if ls := im.statuses[id]; ls != nil && r != nil && r.peer == peer && g.Has(id, r.creds.GetCaRef()) {
					ls = proto.Clone(ls).(*peerv1.LinkStatus)
					ls.AppliedCaFingerprints, ls.Observed = slices.Clone(cg.fps), now
					im.statuses[id] = ls
					statuses = append(statuses, ls)
				}
			}
		}
	}
	im.mu.Unlock()
	for _, ls := range statuses {
		id, _ := link.FromProto(ls.GetLink())
		if err := im.cfg.Outbox.Publish(peer, link.Resource(link.KindStatus, id), ls); err != nil {
			im.log.Warn("failed to publish link status", "link", id.String(), "error", err)
		}
	}
	for _, g := range groups {
		_ = im.cfg.Outbox.Remove(peer, link.CAStatusResource(g))
	}
}

// publishCAStatus tells the peers which CAs the changed links of one Elasticsearch now trust
// (the exporter's propagation metric and lag check). Fingerprints are computed once per
// distinct bundle.
func (im *Importer) publishCAStatus(key types.NamespacedName, aliases []string, bundles map[string]string) {
	fingerprints := map[string][]string{}
	fps := func(bundle string) ([]string, bool) {
		if fp, ok := fingerprints[bundle]; ok {
			return fp, true
		}
		fp, err := appliedFingerprints([]byte(bundle))
		if err != nil {
			return nil, false
		}
		fingerprints[bundle] = fp
		return fp, true
	}
	now := timestamppb.New(im.cfg.Now())
	type group struct {
		peer string
		fps  []string // the CAs every link of the group applied
	}
	groups := map[link.CAGroup]*group{}
	var perLink []*peerv1.LinkStatus
	var perLinkPeers []string
	im.mu.Lock()
	for _, alias := range aliases {
		id := link.ID{Namespace: key.Namespace, Elasticsearch: key.Name, Alias: alias}
		applied, ok := fps(bundles[alias])
		prev, r := im.statuses[id], im.answers[id]
		if !ok || prev == nil || r == nil {
			continue
		}
		if ref := r.creds.GetCaRef(); ref != "" && slices.Contains(im.caps[r.peer], peering.CapabilityCAStatus) {
			g := link.CAGroup{ExportCA: ref, Namespace: key.Namespace, Elasticsearch: key.Name}
			if cur, ok := groups[g]; !ok {
				groups[g] = &group{peer: r.peer, fps: slices.Clone(applied)}
			} else {
				cur.fps = slices.DeleteFunc(cur.fps, func(fp string) bool { return !slices.Contains(applied, fp) })
			}
			continue
		}
		ls := proto.Clone(prev).(*peerv1.LinkStatus)
		ls.AppliedCaFingerprints = slices.Clone(applied)
		ls.Observed = now
		im.statuses[id] = ls
		perLink, perLinkPeers = append(perLink, ls), append(perLinkPeers, r.peer)
	}
	if im.caGroups == nil {
		im.caGroups = caStatuses{}
	}
	for g, cur := range groups {
		im.caGroups[g] = caGroup{peer: cur.peer, fps: cur.fps}
	}
	im.mu.Unlock()
	for g, cur := range groups {
		if err := im.cfg.Outbox.Publish(cur.peer, link.CAStatusResource(g), &peerv1.CAStatus{AppliedCaFingerprints: cur.fps, Observed: now}); err != nil {
			im.log.Warn("failed to publish CA status", "peer", cur.peer, "elasticsearch", key.String(), "error", err)
		}
	}
	for i, ls := range perLink {
		id, _ := link.FromProto(ls.GetLink())
		if err := im.cfg.Outbox.Publish(perLinkPeers[i], link.Resource(link.KindStatus, id), ls); err != nil {
			im.log.Warn("failed to publish link status", "link", id.String(), "error", err)
		}
	}
}

// releaseCAStatus withdraws the CAStatus of a removed link's group once no link of the group is
// left, so the peer forgets it too.
func (im *Importer) releaseCAStatus(id link.ID) {
	im.mu.Lock()
	var gone []link.CAGroup
	var peers []string
	for g, cg := range im.caGroups {
		if g.Namespace != id.Namespace || g.Elasticsearch != id.Elasticsearch {
			continue
		}
		used := false
		for other, r := range im.answers {
			if r != nil && r.peer == cg.peer && g.Has(other, r.creds.GetCaRef()) {
				used = true
				break
			}
		}
		if !used {
			gone, peers = append(gone, g), append(peers, cg.peer)
			delete(im.caGroups, g)
		}
	}
	im.mu.Unlock()
	for i, g := range gone {
		_ = im.cfg.Outbox.Remove(peers[i], link.CAStatusResource(g))
	}
}

// coveredByCAStatus reports whether the only news of a link's status next, against the status
// prev last sent, are CAs its group's CAStatus already reported to the same peer. im.mu is held.
func (im *Importer) coveredByCAStatusLocked(id link.ID, peer string, prev, next *peerv1.LinkStatus) bool {
	r := im.answers[id]
	if prev == nil || r == nil || r.creds.GetCaRef() == "" {
		return false
	}
	cg, ok := im.caGroups[link.CAGroup{ExportCA: r.creds.GetCaRef(), Namespace: id.Namespace, Elasticsearch: id.Elasticsearch}]
	if !ok || cg.peer != peer || !slices.Equal(cg.fps, next.GetAppliedCaFingerprints()) {
		return false
	}
	a, b := withoutObserved(prev), withoutObserved(next)
	a.AppliedCaFingerprints, b.AppliedCaFingerprints = nil, nil
	return proto.Equal(a, b)
}

// appliedFingerprints lists the fingerprints of the CAs in a link's bundle, in its order: what a
// LinkStatus or CAStatus reports as applied (nil, and the error, when the bundle does not parse).
func appliedFingerprints(bundle []byte) ([]string, error) {
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		return nil, err
	}
	return fingerprintsOf(certs), nil
}

// fingerprintsOf are the fingerprints of certs, in their order.
func fingerprintsOf(certs []*x509.Certificate) []string {
	var fps []string
	for _, c := range certs {
		fps = append(fps, pemutil.Fingerprint(c))
	}
	return fps
}
