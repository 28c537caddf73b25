package importer

import (
	"fmt"
	"sort"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// linkPlan is one RemoteCluster of a local Elasticsearch and what is known for it, and what a
// reconcile learned of it that only this link needs.
type linkPlan struct {
	rc *v1alpha1.RemoteCluster
	id link.ID
	// model is the security model of the link, the one its RemoteCluster accepts (modelOf); an
	// answer of another model is a refusal here.
	model    securityModel
	answer   *received
	deleting bool
	// peerGone: no Peer object names the RemoteCluster's peer.
	peerGone bool
	// conflict explains why this RemoteCluster does not get its alias.
	conflict string

	// What the certificate model's pass learned of the link (certmodel.go): transportCA are the
	// remote CAs it holds in the transport trust, which become the link's CA bundle
	// (linkResult.ca) once every pass ran (the API-key pass must not take them for bundles of its
	// own); caInECK says that ECK copied each of them into the transport certificates.
	transportCA []byte
	caInECK     bool
}

// active reports whether the plan's link should be applied.
func (p *linkPlan) active() bool { return !p.deleting && p.conflict == "" }

// desired reports whether the peer's credentials are here to apply.
func (p *linkPlan) desired() bool {
	return p.active() && p.answer != nil && p.answer.creds != nil && !p.answer.removed
}

// applied reports whether the link is applied with its model now: the peer's credentials are
// here and name the model its RemoteCluster accepts. plan already turns an answer of another
// model into a refusal; this checks once more, as the certificate model's guards the transport
// trust.
func (p *linkPlan) applied() bool {
	return p.desired() && p.answer.creds.GetModel() == p.model.wire()
}

// held reports whether the link waits for the peer's first answer since the agent started:
// what is applied stays as it is (an agent restart must not tear links down).
func (p *linkPlan) held() bool { return p.active() && p.answer == nil && !p.peerGone }

// plan gathers the RemoteClusters of a local Elasticsearch. Two RemoteClusters with the same
// alias conflict: the older keeps the alias.
func (im *Importer) plan(ns, es string) []*linkPlan {
	var plans []*linkPlan
	for _, rc := range im.cfg.Cache.RemoteClustersSharedOf(ns, es) { // read only: writes copy (status.go, finalizers)
		id := link.ID{Namespace: ns, Elasticsearch: es, Alias: rc.Spec.Alias}
		p := &linkPlan{rc: rc, id: id, model: modelOf(rc), deleting: rc.DeletionTimestamp != nil}
		if !im.cfg.Cache.HasPeer(rc.Spec.Peer) {
			p.peerGone = true
		}
		im.mu.Lock()
		if r, ok := im.answers[id]; ok && r.peer == rc.Spec.Peer {
			p.answer = r
		}
		im.mu.Unlock()
		if r := p.answer; r != nil && r.creds != nil && !r.removed && answerModel(r.creds) != rc.Spec.AcceptedModel() {
			// Credentials received before the RemoteCluster changed its model are not applied.
			p.answer = &received{peer: r.peer, sequence: r.sequence, local: true, at: r.at,
				refusal: &peerv1.Refusal{Reason: v1alpha1.ReasonModelNotAllowed, Message: modelMessage(r.peer, answerModel(r.creds), rc.Spec.AcceptedModel())}}
		}
		plans = append(plans, p)
	}
	sort.Slice(plans, func(i, j int) bool {
		a, b := plans[i].rc, plans[j].rc
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	owner := map[string]string{}
	for _, p := range plans {
		if p.deleting {
			continue
		}
		if first, taken := owner[p.id.Alias]; taken {
			p.conflict = fmt.Sprintf("alias %s of Elasticsearch %s is already used by RemoteCluster %s", p.id.Alias, es, first)
			continue
		}
		owner[p.id.Alias] = p.rc.Name
	}
	return plans
}
