package exporter

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peerhealth"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// apiKeyModel is the API-key security model, remote side: one cross-cluster API key per link in
// the exported Elasticsearch (keys.go), strong identity on it where both sides allow it
// (signing.go), the remote cluster server as the port peers dial.
type apiKeyModel struct{ e *Exporter }

var _ securityModel = apiKeyModel{}

func (apiKeyModel) name() v1alpha1.SecurityModel { return v1alpha1.SecurityModelAPIKey }
func (apiKeyModel) wire() peerv1.SecurityModel   { return peerv1.SecurityModel_SECURITY_MODEL_API_KEY }
func (apiKeyModel) disabled() *peering.RefusalError {
	return nil // always allowed
}
func (apiKeyModel) port() esPort   { return remoteClusterPort }
func (apiKeyModel) sharesCA() bool { return true }

// usesKeys says whether the links of exp hold API keys: whether its model is this one.
func (e *Exporter) usesKeys(exp *v1alpha1.ClusterExport) bool {
	_, ok := e.modelOf(exp).(apiKeyModel)
	return ok
}

// answer answers an import of an export with the API-key model: the link's key (ensureKey),
// the exported Elasticsearch's transport CA and where to dial its remote cluster server.
func (m apiKeyModel) answer(ctx context.Context, q linkQuery) (linkAnswer, error) {
	e, peer, id, req, status, exp, st := m.e, q.peer, q.id, q.req, q.status, q.exp, q.st
	target, es, ref := e.exportedElasticsearch(exp, st)
	if ref != nil {
		return refuse(ref, 30*time.Second), nil
	}
	if enabled, _, _ := unstructured.NestedBool(es.Object, "spec", "remoteClusterServer", "enabled"); !enabled {
		return refuse(&peering.RefusalError{Reason: v1alpha1.ReasonServerDisabled, Message: "the exported Elasticsearch does not have its remote cluster server enabled yet"}, 30*time.Second), nil
	}
	addr, serverName, err := e.portAddress(ctx, exp, m.port())
	if err != nil {
		return refuse(&peering.RefusalError{Reason: "AddressUnresolved", Message: "the exported Elasticsearch has no reachable remote cluster address yet"}, 10*time.Second), nil
	}
	caSecret, ok := e.cfg.Cache.ECKSecret(target.Namespace, eck.TransportCertsPublic(target.Name))
	if !ok {
		return linkAnswer{}, fmt.Errorf("transport CA of %s/%s: %w", target.Namespace, target.Name, errRetry)
	}
	bundle, err := e.ownCAs.Of(caSecret.Data["ca.crt"], e.cfg.Now())
	if err != nil {
		return linkAnswer{}, fmt.Errorf("failed to read the transport CA of %s/%s: %w", target.Namespace, target.Name, err)
	}
	exportedLicense, verdict := e.licenseVerdict(ctx, exp, peer, id, req, target, st) // license.go
	if ref := e.licenseRefusal(verdict, st); ref != nil {
		return refuse(ref, 0), nil
	}
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	if ref := strongIdentityRefusal(exp, version, req); ref != nil {
		return refuse(ref, 0), nil
	}
	si, err := e.prepareSigning(ctx, peer, id, exp, target, version, req)
	if err != nil {
		return linkAnswer{}, err
	}
	key, requeue, err := e.ensureKey(ctx, peer, id, exp, target, status, st, si.identity(status))
	if err != nil {
		return linkAnswer{}, err
	}
	if err := e.finishSigning(ctx, peer, id, target, si, st); err != nil {
		return linkAnswer{}, err
	}
	if si.trust.wait > 0 {
		requeue = sooner(requeue, si.trust.wait)
	}
	creds := &peerv1.Credentials{
		Link:                   id.Proto(),
		Model:                  m.wire(),
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
	return linkAnswer{creds: creds, requeue: requeue}, nil
}

// published: a link moved here from the certificate model no longer needs the peer in the
// transport trust, now that it has its key.
func (m apiKeyModel) published(ctx context.Context, peer string, id link.ID, st *linkState) error {
	return m.e.releaseTrust(ctx, peer, id, st)
}

// release invalidates the link's keys and removes the signing CAs added for it.
func (m apiKeyModel) release(ctx context.Context, peer string, id link.ID, st *linkState) error {
	if err := m.e.invalidateLink(ctx, peer, id, st, ""); err != nil {
		return err
	}
	return m.e.releaseSigning(ctx, peer, id, st)
}

// collect invalidates the keys nothing justifies any more (gc.go) in every exported
// Elasticsearch and every one a link's keys live in.
func (m apiKeyModel) collect(ctx context.Context) error {
	e := m.e
	var firstErr error
	for t := range e.sweepTargets(func(st *linkState) *elastic.Target { return st.target }) {
		if _, ok := e.cfg.Cache.Elasticsearch(t.Namespace, t.Name); !ok {
			continue
		}
		if err := e.collectIn(ctx, t); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// exportStatus enables the remote cluster server when the export opts in, mounts the signing
// CA, and reports the server, the address, the keys and the license.
func (m apiKeyModel) exportStatus(ctx context.Context, exp *v1alpha1.ClusterExport) (exportStatus, error) {
	e, ns := m.e, exp.Namespace
	var conds []metav1.Condition
	requeue := time.Duration(0)
	esName := exp.Spec.ElasticsearchRef.Name
	es, found := e.cfg.Cache.Elasticsearch(ns, esName)
	enabled := false
	if found {
		enabled, _, _ = unstructured.NestedBool(es.Object, "spec", "remoteClusterServer", "enabled")
	}
	rcs, reason, msg := serverCondition(exp, found, enabled)
	if reason == v1alpha1.ReasonServerEnabling {
		if err := e.enableRemoteClusterServer(ctx, es); err != nil {
			return exportStatus{}, err
		}
		e.cfg.Recorder.Event(exp, corev1.EventTypeWarning, v1alpha1.ReasonServerEnabling,
			fmt.Sprintf("enabled the remote cluster server of Elasticsearch %s (spec.enableRemoteClusterServer): ECK restarts the cluster", esName))
	}
	conds = append(conds, kube.NewCondition(exp, v1alpha1.ConditionRemoteClusterServerEnabled, rcs, reason, msg))
	if found {
		// Mounted while exported (9.3+), so that requiring strong identity later needs no restart.
		if err := e.wireSigningCA(ctx, elastic.Target{Namespace: ns, Name: esName}); err != nil {
			return exportStatus{}, err
		}
	}
	addr, serverName, err := e.portAddress(ctx, exp, m.port())
	addrStatus, addrReason, addrMsg := addressCondition(exp, addr, "", err)
	if err != nil {
		requeue = 10 * time.Second
	}
	conds = append(conds, kube.NewCondition(exp, v1alpha1.ConditionAddressResolved, addrStatus, addrReason, addrMsg))
	conds = append(conds, e.keysCondition(exp))
	ready := []string{v1alpha1.ConditionRemoteClusterServerEnabled, v1alpha1.ConditionAddressResolved, v1alpha1.ConditionKeysManaged}
	if found {
		lc := e.licenseCondition(ctx, exp) // license.go
		conds = append(conds, lc)
		if lc.Status == metav1.ConditionFalse {
			// Named first: the license is why the rest cannot work.
			ready = append([]string{v1alpha1.ConditionLicenseSufficient}, ready...)
		}
	}
	return exportStatus{addr: addr, serverName: serverName, requeue: requeue,
		conditions: func(x *v1alpha1.ClusterExport) {
			for _, c := range conds {
				kube.Set(x, c)
			}
		},
		afterLag: dropModelWarning,
		ready:    func(x *v1alpha1.ClusterExport) metav1.Condition { return peerhealth.Ready(x, ready...) },
	}, nil
}

// enableRemoteClusterServer sets spec.remoteClusterServer.enabled on the exported Elasticsearch
// (wiring.Editor, as every other edit of the resource).
func (e *Exporter) enableRemoteClusterServer(ctx context.Context, es *unstructured.Unstructured) error {
	_, changes, err := e.editor().Edit(ctx, es, "enable the remote cluster server of", wiring.EnableRemoteClusterServer)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		e.log.Warn("enabled the remote cluster server; ECK restarts the cluster", "elasticsearch", es.GetNamespace()+"/"+es.GetName())
	}
	return nil
}

// serverCondition is RemoteClusterServerEnabled of an API-key export whose Elasticsearch was
// found or not and has spec.remoteClusterServer.enabled or not. ServerEnabling means the
// agent is to enable it now (spec.enableRemoteClusterServer).
func serverCondition(exp *v1alpha1.ClusterExport, found, enabled bool) (metav1.ConditionStatus, string, string) {
	esName := exp.Spec.ElasticsearchRef.Name
	switch {
	case !found:
		return metav1.ConditionFalse, v1alpha1.ReasonElasticsearchNotFound, fmt.Sprintf("Elasticsearch %s not found in namespace %s", esName, exp.Namespace)
	case enabled:
		return metav1.ConditionTrue, v1alpha1.ReasonServerEnabled, "spec.remoteClusterServer.enabled is true"
	case exp.Spec.EnableRemoteClusterServer:
		return metav1.ConditionFalse, v1alpha1.ReasonServerEnabling, "enabling spec.remoteClusterServer: ECK restarts the cluster"
	}
	return metav1.ConditionFalse, v1alpha1.ReasonServerDisabled, fmt.Sprintf(
		"Elasticsearch %s does not have spec.remoteClusterServer.enabled: true, which the API-key model needs; set it (ECK restarts the cluster) or set spec.enableRemoteClusterServer on this export", esName)
}
