package exporter

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peerhealth"
	"github.com/ecklink/ecklink/internal/peertext"
)

// reconcileExport keeps the export's finalizer, enables the remote cluster server when the export
// opts in, and reports conditions and the links it serves.
func (e *Exporter) reconcileExport(ctx context.Context, ns, name string) (time.Duration, error) {
	exp, ok := e.cfg.Cache.ClusterExport(ns, name)
	if !ok {
		e.reportLag(ns, name, nil)
		return 0, nil
	}
	if exp.DeletionTimestamp != nil {
		e.reportLag(ns, name, nil)
		return 0, e.finalizeExport(ctx, exp)
	}
	if !hasFinalizer(exp) {
		exp = exp.DeepCopy()
		exp.Finalizers = append(exp.Finalizers, v1alpha1.Finalizer)
		if _, err := e.cfg.CRDs.ClusterExports().Update(ctx, exp); err != nil {
			return 0, fmt.Errorf("failed to add finalizer to export %s/%s: %w", ns, name, err)
		}
		return 0, nil // the update comes back as an event
	}
	s, err := e.modelOf(exp).exportStatus(ctx, exp)
	if err != nil {
		return 0, err
	}
	return e.writeExportStatus(ctx, exp, s)
}

// exportStatus is what a security model's pass over an export writes to its status, besides
// what every pass writes (writeExportStatus).
type exportStatus struct {
	addr, serverName string
	// requeue is when the pass wants to run again (0: at the resync); the next lag warning may
	// bring it forward.
	requeue time.Duration
	// conditions sets the model's own conditions; afterLag, if set, runs after PeersCurrent.
	conditions func(x *v1alpha1.ClusterExport)
	afterLag   func(x kube.Conditioned)
	// ready is the Ready condition, judged once the peers' health is set.
	ready func(x *v1alpha1.ClusterExport) metav1.Condition
}

// writeExportStatus writes an export's status: the model's conditions, whether its consumers
// keep up with rotations (PeersCurrent, lag.go), its peers' health, Ready, its address and the
// links it serves; it reports the lag metric and returns when to run again.
func (e *Exporter) writeExportStatus(ctx context.Context, exp *v1alpha1.ClusterExport, s exportStatus) (time.Duration, error) {
	ns, name := exp.Namespace, exp.Name
	requeue := s.requeue
	links, linkCount := e.exportLinks(ns, name)
	lagCond, lagApplies, lag, lagNext := e.peerLag(exp) // lag.go
	if lagNext > 0 && (requeue == 0 || lagNext < requeue) {
		requeue = lagNext
	}
	_, err := e.cfg.CRDs.ClusterExports().UpdateStatus(ctx, exp, func(x *v1alpha1.ClusterExport) error {
		s.conditions(x)
		setPeersCurrent(x, lagCond, lagApplies)
		if s.afterLag != nil {
			s.afterLag(x)
		}
		peerhealth.Set(x, e.cfg.Cache, linkedPeers(links))
		kube.Set(x, s.ready(x))
		x.Status.ObservedGeneration = x.Generation
		x.Status.ProxyAddress, x.Status.ServerName = s.addr, s.serverName
		x.Status.Links, x.Status.LinkCount = links, linkCount
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to update status of export %s/%s: %w", ns, name, err)
	}
	e.reportLag(ns, name, lag)
	return requeue, nil
}

// exportLinks reports the links served by an export, and how many there are. At most
// maxStatusLinks are reported, shared out fairly between peers (each peer's first links, in
// order, round by round), so that one peer's many links cannot hide another's; the result is
// sorted by peer and link.
func (e *Exporter) exportLinks(ns, name string) ([]v1alpha1.ExportLink, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	byPeer := map[string][]v1alpha1.ExportLink{}
	total := 0
	for peer, links := range e.links {
		for id, st := range links {
			if st.req == nil || st.removed || st.req.GetExportNamespace() != ns || st.req.GetExportName() != name {
				continue
			}
			byPeer[peer] = append(byPeer[peer], e.exportLinkLocked(peer, id, st))
			total++
		}
	}
	peers := make([]string, 0, len(byPeer))
	for peer, links := range byPeer {
		sort.Slice(links, func(i, j int) bool { return linkKey(links[i]) < linkKey(links[j]) })
		peers = append(peers, peer)
	}
	sort.Strings(peers)
	var out []v1alpha1.ExportLink
	for round := 0; len(out) < min(total, maxStatusLinks); round++ {
		for _, peer := range peers {
			if round < len(byPeer[peer]) && len(out) < maxStatusLinks {
				out = append(out, byPeer[peer][round])
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return linkKey(out[i]) < linkKey(out[j])
	})
	return out, total
}

func linkKey(l v1alpha1.ExportLink) string {
	return l.LocalNamespace + "/" + l.LocalElasticsearch + "/" + l.Alias
}

// exportLinkLocked is the status of one link; peer text is cleaned and clipped. e.mu is held.
func (e *Exporter) exportLinkLocked(peer string, id link.ID, st *linkState) v1alpha1.ExportLink {
	l := v1alpha1.ExportLink{Peer: peer, LocalNamespace: id.Namespace, LocalElasticsearch: id.Elasticsearch, Alias: id.Alias, APIKeyID: st.keyID, StrongIdentity: st.siStep}
	if !st.created.IsZero() {
		l.Created = &metav1.Time{Time: st.created.Truncate(time.Second)}
	}
	if !st.expires.IsZero() {
		l.Expires = &metav1.Time{Time: st.expires.Truncate(time.Second)}
	}
	if s := st.status; s != nil {
		l.Connected = s.GetConnected() && s.GetAppliedApiKeyId() == st.keyID
		if s.GetObserved() != nil {
			l.LastAcknowledged = &metav1.Time{Time: s.GetObserved().AsTime().Truncate(time.Second)}
		}
		l.Message = peertext.Clean(s.GetMessage(), peertext.Status)
	}
	if st.refusal != "" {
		l.Message = clip(st.refusal, maxLinkMessage)
	}
	if f := e.linkFailure(peer, id); f != "" {
		l.Message = clip(f, maxLinkMessage)
	}
	return l
}

// maxLinkMessage bounds status.links[].message (the CRD allows 1024 bytes).
const maxLinkMessage = 1000

// finalizeExport invalidates every key issued under the export, then lets it go.
func (e *Exporter) finalizeExport(ctx context.Context, exp *v1alpha1.ClusterExport) error {
	if !hasFinalizer(exp) {
		return nil
	}
	target := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	if _, ok := e.cfg.Cache.Elasticsearch(target.Namespace, target.Name); ok {
		client, err := e.cfg.Elastic.Client(ctx, target)
		if err != nil {
			return fmt.Errorf("failed to reach %s: %w", target, err)
		}
		keys, err := client.ListKeys(ctx, elastic.KeyQuery{ActiveOnly: true, Metadata: map[string]string{
			metaQueryField(metaEnvironment): e.cfg.Environment,
			metaQueryField(metaExport):      exp.Namespace + "/" + exp.Name,
		}})
		if err != nil {
			return fmt.Errorf("failed to list keys of export %s/%s: %w", exp.Namespace, exp.Name, err)
		}
		if len(keys) > 0 {
			ids := make([]string, len(keys))
			for i, k := range keys {
				ids[i] = k.ID
			}
			if err := e.invalidate(ctx, client, ids); err != nil {
				return err
			}
			e.log.Info("export deleted, keys invalidated", "export", exp.Namespace+"/"+exp.Name, "count", len(ids))
		}
	}
	if err := e.releaseExportTrust(ctx, exp); err != nil {
		return err
	}
	if err := e.releaseSigningCA(ctx, exp); err != nil {
		return err
	}
	exp = exp.DeepCopy()
	kept := exp.Finalizers[:0]
	for _, f := range exp.Finalizers {
		if f != v1alpha1.Finalizer {
			kept = append(kept, f)
		}
	}
	exp.Finalizers = kept
	if _, err := e.cfg.CRDs.ClusterExports().Update(ctx, exp); err != nil {
		return fmt.Errorf("failed to remove finalizer from export %s/%s: %w", exp.Namespace, exp.Name, err)
	}
	return nil
}

func hasFinalizer(obj metav1.Object) bool {
	for _, f := range obj.GetFinalizers() {
		if f == v1alpha1.Finalizer {
			return true
		}
	}
	return false
}

// addressCondition is AddressResolved for the address e.address returned (or its error); port
// names what peers dial when it is not the remote cluster port ("the transport port at ").
func addressCondition(exp *v1alpha1.ClusterExport, addr, port string, err error) (metav1.ConditionStatus, string, string) {
	switch {
	case err != nil:
		return metav1.ConditionFalse, addressReason(err), err.Error()
	case exp.Spec.ProxyAddress != "":
		return metav1.ConditionTrue, v1alpha1.ReasonAddressFromSpec, "peers dial " + port + addr + " (spec.proxyAddress)"
	}
	return metav1.ConditionTrue, v1alpha1.ReasonAddressFromService, "peers dial " + port + addr + " (load balancer)"
}
