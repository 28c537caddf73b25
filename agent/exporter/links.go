package exporter

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
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
	creds, ref, requeue, err := e.answer(ctx, peer, id, req, status, st)
	if err != nil {
		return 0, err
	}
	if ref != nil {
		// Whatever this peer held for the link no longer stands.
		if err := e.releaseLink(ctx, peer, id, st); err != nil {
			return 0, err
		}
		e.pubMu.Lock() // a CA item must not publish credentials over the refusal (exportca.go)
		e.mu.Lock()
		st.refusal, st.keyID, st.sent, st.siStep = ref.Message, "", nil, ""
		e.mu.Unlock()
		err := e.cfg.Outbox.Publish(peer, resource, refusalFor(id, ref))
		e.pubMu.Unlock()
		if err != nil {
			return 0, err
		}
		e.log.Info("import refused", "peer", peer, "link", id.String(), "reason", ref.Reason)
		return requeue, nil
	}
	if err := e.publishCredentials(peer, id, st, creds); err != nil { // exportca.go
		return 0, err
	}
	if creds.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE {
		// A link moved to the API-key model no longer needs the peer in the transport trust.
		if err := e.releaseTrust(ctx, peer, id, st); err != nil {
			return 0, err
		}
	}
	return requeue, nil
}

// releaseLink undoes what a removed or refused link held on this side: it invalidates the
// link's keys and removes the peer CA and the signing CAs added for it.
func (e *Exporter) releaseLink(ctx context.Context, peer string, id link.ID, st *linkState) error {
	if err := e.invalidateLink(ctx, peer, id, st, ""); err != nil {
		return err
	}
	if err := e.releaseTrust(ctx, peer, id, st); err != nil {
		return err
	}
	return e.releaseSigning(ctx, peer, id, st)
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

// answer decides what the peer gets for an import request.
func (e *Exporter) answer(ctx context.Context, peer string, id link.ID, req *peerv1.ImportRequest, status *peerv1.LinkStatus, st *linkState) (*peerv1.Credentials, *peering.RefusalError, time.Duration, error) {
	notGranted := &peering.RefusalError{Reason: v1alpha1.ReasonPeerNotGranted, Message: fmt.Sprintf(
		"no ClusterExport %s/%s grants access to environment %s", req.GetExportNamespace(), req.GetExportName(), peer)}
	if _, ok := e.cfg.Cache.Peer(peer); !ok {
		return nil, &peering.RefusalError{Reason: v1alpha1.ReasonPeerNotFound, Message: "environment " + peer + " is not a peer"}, 0, nil
	}
	exp, ok := e.cfg.Cache.ClusterExport(req.GetExportNamespace(), req.GetExportName())
	granted := ok && exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch)
	if !ok || exp.DeletionTimestamp != nil || !granted {
		// The same answer whether the export is missing, does not name the peer, or names it
		// for other namespaces, so a peer cannot probe what this environment exports.
		if ok && !granted {
			e.cfg.Recorder.Event(exp, corev1.EventTypeWarning, v1alpha1.ReasonPeerNotGranted,
				fmt.Sprintf("refused environment %s (link %s): not granted by spec.peers or spec.grants", peer, id))
		}
		return nil, notGranted, 0, nil
	}
	e.mu.Lock()
	st.export = exp.Namespace + "/" + exp.Name
	e.mu.Unlock()
	if ref := e.modelRefusal(peer, id, req, exp); ref != nil {
		return nil, ref, 0, nil
	}
	if exp.Spec.Model == v1alpha1.SecurityModelCertificate {
		return e.answerCertificate(ctx, peer, id, req, exp, st)
	}
	target, es, ref := e.exportedElasticsearch(exp, st)
	if ref != nil {
		return nil, ref, 30 * time.Second, nil
	}
	if enabled, _, _ := unstructured.NestedBool(es.Object, "spec", "remoteClusterServer", "enabled"); !enabled {
		return nil, &peering.RefusalError{Reason: v1alpha1.ReasonServerDisabled, Message: "the exported Elasticsearch does not have its remote cluster server enabled yet"}, 30 * time.Second, nil
	}
	addr, serverName, err := e.address(ctx, exp)
	if err != nil {
		return nil, &peering.RefusalError{Reason: "AddressUnresolved", Message: "the exported Elasticsearch has no reachable remote cluster address yet"}, 10 * time.Second, nil
	}
	caSecret, ok := e.cfg.Cache.ECKSecret(target.Namespace, eck.TransportCertsPublic(target.Name))
	if !ok {
		return nil, nil, 0, fmt.Errorf("transport CA of %s/%s: %w", target.Namespace, target.Name, errRetry)
	}
	bundle, err := e.ownCAs.Of(caSecret.Data["ca.crt"], e.cfg.Now())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("failed to read the transport CA of %s/%s: %w", target.Namespace, target.Name, err)
	}
	exportedLicense, verdict := e.licenseVerdict(ctx, exp, peer, id, req, target, st) // license.go
	if ref := e.licenseRefusal(verdict, st); ref != nil {
		return nil, ref, 0, nil
	}
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	if ref := strongIdentityRefusal(exp, version, req); ref != nil {
		return nil, ref, 0, nil
	}
	si, err := e.prepareSigning(ctx, peer, id, exp, target, version, req)
	if err != nil {
		return nil, nil, 0, err
	}
	key, requeue, err := e.ensureKey(ctx, peer, id, exp, target, status, st, si.identity(status))
	if err != nil {
		return nil, nil, 0, err
	}
	if err := e.finishSigning(ctx, peer, id, target, si, st); err != nil {
		return nil, nil, 0, err
	}
	if si.trust.wait > 0 {
		requeue = sooner(requeue, si.trust.wait)
	}
	creds := &peerv1.Credentials{
		Link:                   id.Proto(),
		Model:                  peerv1.SecurityModel_SECURITY_MODEL_API_KEY,
		ApiKeyId:               key.id,
		ApiKeyEncoded:          key.encoded.Value(),
		CaBundle:               bundle,
		ProxyAddress:           addr,
		ServerName:             serverName,
		ElasticsearchVersion:   version,
		StrongIdentity:         si.required,
		IdentityRequired:       key.identity != nil,
		StrongIdentityFallback: si.fallback,
		ElasticsearchLicense:   exportedLicense.Proto(),
		KeyRotationRequest:     key.request,
	}
	if si.required {
		creds.SigningTrustedFingerprints = si.trust.trusted
	}
	if !key.expires.IsZero() {
		creds.ApiKeyExpiration = timestamppb.New(key.expires)
	}
	return creds, nil, requeue, nil
}
