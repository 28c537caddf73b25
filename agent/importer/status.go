package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peerhealth"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

var linkConditions = []string{v1alpha1.ConditionTrustApplied, v1alpha1.ConditionCredentialsApplied, v1alpha1.ConditionSettingsApplied, v1alpha1.ConditionConnected}

// writers is how many RemoteCluster writes of one pass (finalizers, statuses) run side by
// side. Each is an API round trip; one after the other, a pass over 100 new links on one
// Elasticsearch spent ~10 s adding finalizers before it sent the first import request, and as
// long again on the statuses (bench trace, +800 links on a loaded machine).
const writers = 8

// updateStatuses writes each RemoteCluster's conditions and tells peers where their links stand.
// It returns the status writes that failed, so the reconcile is retried: a status lost to an API
// hiccup would otherwise stay stale until the next change. The writes run side by side
// (writers); what they compute from the pass's state runs under one lock.
func (im *Importer) updateStatuses(ctx context.Context, plans []*linkPlan, st *state) error {
	var (
		mu     sync.Mutex // guards st, peers and errs
		errs   []error
		writes errgroup.Group
	)
	writes.SetLimit(writers)
	peers := &peersOfPass{lister: im.cfg.Cache}
	for _, p := range plans {
		if p.deleting {
			continue
		}
		mu.Lock()
		conds := im.conditions(p, st)
		if p.desired() && st.esFound && st.esError == "" {
			im.publishStatus(p, st)
			im.recordMetrics(p, st)
		}
		mu.Unlock()
		writes.Go(func() error {
			_, err := im.cfg.CRDs.RemoteClusters().UpdateStatus(ctx, p.rc, func(rc *v1alpha1.RemoteCluster) error {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conds {
					kube.Set(rc, c)
				}
				peerhealth.Set(rc, peers, []string{rc.Spec.Peer})
				kube.Set(rc, peerhealth.Ready(rc, setLicenseCondition(rc, p, st)...)) // license.go
				modelCondition(rc, p)
				setSigningCondition(rc, p, st)
				rc.Status.ObservedGeneration = rc.Generation
				im.fillStatus(rc, p, st)
				return nil
			})
			if err != nil && !apierrors.IsNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("failed to update status of RemoteCluster %s/%s: %w", p.rc.Namespace, p.rc.Name, err))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = writes.Wait() // the errors are in errs
	return errors.Join(errs...)
}

// peersOfPass reads each Peer once per pass: the status of every link to a peer reads it.
type peersOfPass struct {
	lister peerhealth.PeerLister
	seen   map[string]*v1alpha1.Peer // nil when there is no such Peer
}

func (p *peersOfPass) Peer(environment string) (*v1alpha1.Peer, bool) {
	if peer, ok := p.seen[environment]; ok {
		return peer, peer != nil
	}
	peer, ok := p.lister.Peer(environment)
	if !ok {
		peer = nil
	}
	if p.seen == nil {
		p.seen = map[string]*v1alpha1.Peer{}
	}
	p.seen[environment] = peer
	return peer, ok
}

// conditions derives the four link conditions from what the reconcile learned.
func (im *Importer) conditions(p *linkPlan, st *state) []metav1.Condition {
	rc := p.rc
	all := func(reason, msg string) []metav1.Condition {
		out := make([]metav1.Condition, 0, len(linkConditions))
		for _, t := range linkConditions {
			out = append(out, kube.NewCondition(rc, t, metav1.ConditionFalse, reason, msg))
		}
		return out
	}
	switch {
	case p.conflict != "":
		return all(v1alpha1.ReasonAliasConflict, p.conflict)
	case p.peerGone:
		return all(v1alpha1.ReasonPeerNotFound, fmt.Sprintf("no Peer %s: pair this environment with it first (agentctl pair)", rc.Spec.Peer))
	case p.answer == nil:
		return all(v1alpha1.ReasonWaitingForPeer, fmt.Sprintf("waiting for environment %s to answer the import of %s/%s", rc.Spec.Peer, rc.Spec.Export.Namespace, rc.Spec.Export.Name))
	case p.answer.refusal != nil && p.answer.local:
		return all(p.answer.refusal.GetReason(), p.answer.refusal.GetMessage())
	case p.answer.refusal != nil:
		return all(p.answer.refusal.GetReason(), fmt.Sprintf("environment %s refused: %s", rc.Spec.Peer, p.answer.refusal.GetMessage()))
	case p.answer.removed:
		return all(v1alpha1.ReasonWaitingForPeer, fmt.Sprintf("environment %s withdrew the credentials of this link", rc.Spec.Peer))
	case !st.esFound:
		return all(v1alpha1.ReasonElasticsearchNotFound, fmt.Sprintf("Elasticsearch %s not found in namespace %s", rc.Spec.ElasticsearchRef.Name, rc.Namespace))
	case st.esError != "":
		return all(st.esReason, st.esError)
	}
	return p.model.conditions(p, st)
}

// linkConds collects the conditions of one link's RemoteCluster.
type linkConds struct {
	rc  *v1alpha1.RemoteCluster
	out []metav1.Condition
}

func (c *linkConds) add(t string, ok bool, reason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	c.out = append(c.out, kube.NewCondition(c.rc, t, status, reason, msg))
}

// settingsAndConnected adds the two conditions both security models derive alike: SettingsApplied
// (proxy is where cluster.remote.<alias> points, notYet why it is not set yet) and Connected.
func (c *linkConds) settingsAndConnected(st *state, alias, proxy, notYet string) {
	r := st.link(alias)
	switch {
	case r.userAlias:
		c.add(v1alpha1.ConditionSettingsApplied, false, v1alpha1.ReasonAliasConflict, fmt.Sprintf(
			"cluster.remote.%s is already configured in Elasticsearch and not managed by ecklink: remove it or choose another alias", alias))
	case r.settingsApplied:
		c.add(v1alpha1.ConditionSettingsApplied, true, v1alpha1.ReasonApplied, fmt.Sprintf("cluster.remote.%s: proxy mode to %s", alias, proxy))
	default:
		c.add(v1alpha1.ConditionSettingsApplied, false, v1alpha1.ReasonReconciling, notYet)
	}
	if r.info.Connected {
		c.add(v1alpha1.ConditionConnected, true, v1alpha1.ReasonRemoteConnected, "GET /_remote/info reports connected: true")
	} else {
		c.add(v1alpha1.ConditionConnected, false, v1alpha1.ReasonRemoteNotConnected, "GET /_remote/info reports connected: false (agentctl doctor names the failing part)")
	}
}

// fillStatus sets the descriptive status fields.
func (im *Importer) fillStatus(rc *v1alpha1.RemoteCluster, p *linkPlan, st *state) {
	alias := p.id.Alias
	rc.Status.WiringSnippet = st.snippet + st.cert.snippet
	if p.answer == nil || p.answer.creds == nil || p.answer.removed {
		return
	}
	c := p.answer.creds
	rc.Status.Model = answerModel(c)
	rc.Status.ProxyAddress, rc.Status.ServerName = c.GetProxyAddress(), c.GetServerName()
	rc.Status.LastSync = &metav1.Time{Time: p.answer.at.Truncate(time.Second)}
	if b := st.bundleOf(alias); b.err == nil {
		rc.Status.RemoteCertificateAuthorities = b.certificateInfos()
	}
	p.model.report(im, rc, p, st) // the model's own fields (status.apiKey)
	if st.link(alias).keyID == c.GetApiKeyId() {
		rc.Status.AppliedSequence = int64(p.answer.sequence)
	}
}

// publishStatus tells the peer which key is in effect and whether the link is connected. The
// observed time changes only with the content, so an unchanged link costs nothing on the stream.
func (im *Importer) publishStatus(p *linkPlan, st *state) {
	alias := p.id.Alias
	r := st.link(alias)
	ls := &peerv1.LinkStatus{
		Link:            p.id.Proto(),
		AppliedApiKeyId: r.effectiveKey,
		WrittenApiKeyId: r.keyID,
		Connected:       r.info.Connected,
		SigningSubject:  r.signingSubject,
	}
	if b := st.bundleOf(alias); b.err == nil { // none when it does not parse
		ls.AppliedCaFingerprints = slices.Clone(b.fingerprintsOf())
	}
	if !ls.Connected {
		ls.Message = "not connected"
	}
	resource := link.Resource(link.KindStatus, p.id)
	im.mu.Lock()
	prev := im.statuses[p.id]
	if im.coveredByCAStatusLocked(p.id, p.rc.Spec.Peer, prev, ls) { // castatus.go
		im.mu.Unlock()
		return
	}
	if prev != nil && proto.Equal(withoutObserved(prev), ls) { // ls has no observed time yet
		ls.Observed = prev.Observed
	} else {
		ls.Observed = timestamppb.New(im.cfg.Now())
	}
	im.statuses[p.id] = ls
	im.mu.Unlock()
	if err := im.cfg.Outbox.Publish(p.rc.Spec.Peer, resource, ls); err != nil {
		im.log.Warn("failed to publish link status", "link", p.id.String(), "error", err)
	}
}

// recordMetrics exports the link's connection, CA expiry and key expiry.
func (im *Importer) recordMetrics(p *linkPlan, st *state) {
	var caExpiry, keyExpiry time.Time
	if b := st.bundleOf(p.id.Alias); b.err == nil {
		caExpiry = b.notAfter
	}
	r := st.link(p.id.Alias)
	if c := p.answer.creds; c.GetApiKeyExpiration() != nil && r.effectiveKey == c.GetApiKeyId() {
		keyExpiry = c.GetApiKeyExpiration().AsTime()
	}
	im.cfg.Metrics.Link(p.id.Namespace, p.id.Elasticsearch, p.id.Alias, r.info.Connected, caExpiry, keyExpiry)
}

func withoutObserved(ls *peerv1.LinkStatus) *peerv1.LinkStatus {
	c := proto.Clone(ls).(*peerv1.LinkStatus)
	c.Observed = nil
	return c
}
