package exporter

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// reconcileLink answers one link of one peer: credentials, or a refusal that says why.
func (e *Exporter) reconcileLink(ctx context.Context, peer string, id link.ID) (time.Duration, error) {
	e.mu.Lock()
	st, ok := e.links[peer][id]
	if !ok {
		e.mu.Unlock()
		return 0, nil
	}
	removed, req, status := st.removed, st.req, st.status
	e.mu.Unlock()
	resource := link.Resource(link.KindCredentials, id)
	if removed || req == nil {
		if err := e.releaseLink(ctx, peer, id, st); err != nil {
			return 0, err
		}
		e.pubMu.Lock()
		err := e.cfg.Outbox.Remove(peer, resource)
		e.mu.Lock()
		st.sent = nil
		if err == nil {
			delete(e.links[peer], id)
		}
		e.mu.Unlock()
		e.pubMu.Unlock()
		if err != nil {
			return 0, err
		}
		e.log.Info("link removed, keys invalidated", "peer", peer, "link", id.String())
		return 0, nil
	}
	a, err := e.answer(ctx, peer, id, req, status, st)
	if err != nil {
		return 0, err
	}
	if a.refusal != nil {
		// Whatever this peer held for the link no longer stands.
		if err := e.releaseLink(ctx, peer, id, st); err != nil {
			return 0, err
		}
		e.pubMu.Lock() // a CA item must not publish credentials over the refusal (exportca.go)
		e.mu.Lock()
		st.refusal, st.keyID, st.sent, st.siStep = a.refusal.Message, "", nil, ""
		e.mu.Unlock()
		err := e.cfg.Outbox.Publish(peer, resource, refusalFor(id, a.refusal))
		e.pubMu.Unlock()
		if err != nil {
			return 0, err
		}
		e.log.Info("import refused", "peer", peer, "link", id.String(), "reason", a.refusal.Reason)
		return a.requeue, nil
	}
	if err := e.publishCredentials(peer, id, st, a.creds); err != nil { // exportca.go
		return 0, err
	}
	if err := a.model.published(ctx, peer, id, st); err != nil {
		return 0, err
	}
	return a.requeue, nil
}

// releaseLink undoes what a removed or refused link held on this side under any security model
// (its keys, the peer CA and the signing CAs added for it).
func (e *Exporter) releaseLink(ctx context.Context, peer string, id link.ID, st *linkState) error {
	for _, m := range e.models() {
		if err := m.release(ctx, peer, id, st); err != nil {
			return err
		}
	}
	return nil
}

// exportedElasticsearch returns the Elasticsearch exp exports and records it as the link's
// target, or refuses the link while it is not available.
func (e *Exporter) exportedElasticsearch(exp *v1alpha1.ClusterExport, st *linkState) (elastic.Target, *unstructured.Unstructured, *peering.RefusalError) {
	target := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	es, ok := e.cfg.Cache.Elasticsearch(target.Namespace, target.Name)
	if !ok {
		return target, nil, &peering.RefusalError{Reason: v1alpha1.ReasonElasticsearchNotFound, Message: "the exported Elasticsearch is not available"}
	}
	e.mu.Lock()
	st.target = &target
	e.mu.Unlock()
	return target, es, nil
}

// answer decides what the peer gets for an import request: a refusal while the peer, the
// export's grant or the security model does not allow it, else the export's model's answer.
func (e *Exporter) answer(ctx context.Context, peer string, id link.ID, req *peerv1.ImportRequest, status *peerv1.LinkStatus, st *linkState) (linkAnswer, error) {
	notGranted := &peering.RefusalError{Reason: v1alpha1.ReasonPeerNotGranted, Message: fmt.Sprintf(
		"no ClusterExport %s/%s grants access to environment %s", req.GetExportNamespace(), req.GetExportName(), peer)}
	if !e.cfg.Cache.HasPeer(peer) {
		return refuse(&peering.RefusalError{Reason: v1alpha1.ReasonPeerNotFound, Message: "environment " + peer + " is not a peer"}, 0), nil
	}
	exp, ok := e.cfg.Cache.ClusterExportSpec(req.GetExportNamespace(), req.GetExportName())
	granted := ok && exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch)
	if !ok || exp.DeletionTimestamp != nil || !granted {
		// The same answer whether the export is missing, does not name the peer, or names it
		// for other namespaces, so a peer cannot probe what this environment exports.
		if ok && !granted {
			e.cfg.Recorder.Event(exp, corev1.EventTypeWarning, v1alpha1.ReasonPeerNotGranted,
				fmt.Sprintf("refused environment %s (link %s): not granted by spec.peers or spec.grants", peer, id))
		}
		return refuse(notGranted, 0), nil
	}
	e.mu.Lock()
	st.export = exp.Namespace + "/" + exp.Name
	e.mu.Unlock()
	if ref := e.modelRefusal(peer, id, req, exp); ref != nil {
		return refuse(ref, 0), nil
	}
	m := e.modelOf(exp)
	a, err := m.answer(ctx, linkQuery{peer: peer, id: id, req: req, status: status, exp: exp, st: st})
	a.model = m
	return a, err
}
