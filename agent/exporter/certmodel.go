package exporter

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peerhealth"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The certificate security model, remote side. A peer's import request carries the transport CA
// of its Elasticsearch; for an export with model certificate that names the peer, the exporter
// adds that CA to the exported Elasticsearch's transport trust (the ConfigMap named by
// spec.transport.tls.certificateAuthorities, joined or created and wired, see transporttrust)
// and answers with its own transport CA and the exposed transport address. No API key exists;
// the mutual TLS of the transport port is the whole authentication, which is why Elastic
// deprecates the model.

// heldTrust is a peer CA the exporter added for a link: where, and under which owner.
type heldTrust struct {
	target elastic.Target
	owner  string
}

// trustOwner names a link's entry in the exported Elasticsearch's transport CA ConfigMap. The
// export is part of it, so deleting one export releases only what that export granted.
func trustOwner(export, peer string, id link.ID) string {
	return "export/" + export + "/" + peer + "/" + id.String()
}

// parseTrustOwner splits an owner made by trustOwner.
func parseTrustOwner(owner string) (export, peer string, id link.ID, ok bool) {
	parts := strings.SplitN(owner, "/", 4)
	if len(parts) != 4 || parts[0] != "export" {
		return "", "", link.ID{}, false
	}
	id, err := link.Parse(parts[3])
	return parts[1], parts[2], id, err == nil
}

// exportMode is how the exporter edits an exported Elasticsearch: a ClusterExport has no wiring
// choice, the agent wires the exported side itself.
const exportMode = wiring.Managed

func (e *Exporter) trustStore() *transporttrust.Store {
	return &transporttrust.Store{Kube: e.cfg.Kube, Editor: e.editor(), Now: e.cfg.Now}
}

// editor is the exporter's writer of Elasticsearch resources (built on demand: it holds no state,
// and tests build Exporters without New).
func (e *Exporter) editor() *wiring.Editor { return wiring.NewEditor(e.cfg.Dynamic, e.log) }

// certificateModel is the certificate security model, remote side (see above).
type certificateModel struct{ e *Exporter }

var _ securityModel = certificateModel{}

func (certificateModel) name() v1alpha1.SecurityModel { return v1alpha1.SecurityModelCertificate }
func (certificateModel) wire() peerv1.SecurityModel {
	return peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE
}
func (certificateModel) port() esPort { return transportPort }

// sharesCA is false: a certificate-model consumer takes exactly one CA inline (importer
// validateCertificate).
func (certificateModel) sharesCA() bool { return false }

// disabled refuses every import while this agent does not allow the model (certificateModel.enabled).
func (m certificateModel) disabled() *peering.RefusalError {
	if m.e.cfg.CertificateModel {
		return nil
	}
	return &peering.RefusalError{Reason: v1alpha1.ReasonCertificateModelDisabled, Message: v1alpha1.CertificateModelDisabledMessage}
}

// published has nothing to do: the keys of an earlier API-key answer went in answer.
func (certificateModel) published(context.Context, string, link.ID, *linkState) error { return nil }

// release removes the peer CA added for the link.
func (m certificateModel) release(ctx context.Context, peer string, id link.ID, st *linkState) error {
	return m.e.releaseTrust(ctx, peer, id, st)
}

// collect removes the peer CAs nothing justifies any more (collectTrust).
func (m certificateModel) collect(ctx context.Context) error { return m.e.collectTrust(ctx) }

// answer answers an import of an export with the certificate model.
func (m certificateModel) answer(ctx context.Context, q linkQuery) (linkAnswer, error) {
	e, peer, id, req, exp, st := m.e, q.peer, q.id, q.req, q.exp, q.st
	target, es, ref := e.exportedElasticsearch(exp, st)
	if ref != nil {
		return refuse(ref, 30*time.Second), nil
	}
	addr, serverName, err := e.portAddress(ctx, exp, m.port())
	if err != nil {
		return refuse(&peering.RefusalError{Reason: "AddressUnresolved", Message: "the exported Elasticsearch has no reachable transport address yet"}, 10*time.Second), nil
	}
	now := e.cfg.Now()
	peerCA, ref := consumerTransportCA(exp, req.GetTransportCaBundle(), now)
	if ref != nil {
		return refuse(ref, 0), nil
	}
	peerCAs := []*x509.Certificate{peerCA}
	caSecret, ok := e.cfg.Cache.ECKSecret(target.Namespace, eck.TransportCertsPublic(target.Name))
	if !ok {
		return linkAnswer{}, fmt.Errorf("transport CA of %s: %w", target, errRetry)
	}
	own, err := e.ownCAs.Of(caSecret.Data["ca.crt"], now)
	if err != nil {
		return linkAnswer{}, fmt.Errorf("failed to read the transport CA of %s: %w", target, err)
	}

	// Keys from an earlier API-key answer are trust this link no longer needs. Failing to
	// invalidate them must not hold the link: the sweep retries (see unjustified).
	e.mu.Lock()
	oldKey := st.keyID
	e.mu.Unlock()
	if oldKey != "" {
		if err := e.invalidateLink(ctx, peer, id, st, ""); err != nil {
			e.log.Warn("failed to invalidate the api keys of a link now on the certificate model", "peer", peer, "link", id.String(), "error", err)
		}
	}

	owner := trustOwner(exp.Name, peer, id)
	e.mu.Lock()
	previous := st.trust
	e.mu.Unlock()
	if previous != nil && *previous != (heldTrust{target: target, owner: owner}) {
		// The link moved to another export or Elasticsearch: what the old one granted goes.
		if err := e.releaseTrust(ctx, peer, id, st); err != nil {
			return linkAnswer{}, err
		}
	}
	res, err := e.trustStore().Apply(ctx, es, map[string][]*x509.Certificate{owner: peerCAs}, exportMode)
	if err != nil {
		return linkAnswer{}, err
	}
	e.mu.Lock()
	st.trust = &heldTrust{target: target, owner: owner}
	st.keyID, st.created, st.expires, st.refusal = "", time.Time{}, time.Time{}, ""
	e.mu.Unlock()
	if previous == nil {
		e.log.Info("peer transport CA added to the transport trust (certificate model)", "peer", peer, "link", id.String(),
			"elasticsearch", target.String(), "configmap", res.ConfigMap)
	}
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	return linkAnswer{creds: &peerv1.Credentials{
		Link:                 id.Proto(),
		Model:                m.wire(),
		CaBundle:             own,
		ProxyAddress:         addr,
		ServerName:           serverName,
		ElasticsearchVersion: version,
	}}, nil
}

// releaseTrust removes the peer CA the exporter added for a link, if it added one. User CAs and
// other links' CAs stay (see transporttrust.Update).
func (e *Exporter) releaseTrust(ctx context.Context, peer string, id link.ID, st *linkState) error {
	e.mu.Lock()
	held := st.trust
	e.mu.Unlock()
	if held == nil {
		return nil
	}
	if err := e.release(ctx, held.target, func(owner string) bool { return owner == held.owner }); err != nil {
		return err
	}
	e.mu.Lock()
	if st.trust == held {
		st.trust = nil
	}
	e.mu.Unlock()
	e.log.Info("peer transport CA removed from the transport trust", "peer", peer, "link", id.String(), "elasticsearch", held.target.String())
	return nil
}

// release removes the owners matched by drop from an Elasticsearch's transport CA ConfigMap.
func (e *Exporter) release(ctx context.Context, t elastic.Target, drop func(owner string) bool) error {
	store := e.trustStore()
	es, ok := e.cfg.Cache.Elasticsearch(t.Namespace, t.Name)
	if !ok {
		return store.ReleaseOrphaned(ctx, t.Namespace, t.Name, drop)
	}
	res, err := store.Read(ctx, es)
	if err != nil {
		return err
	}
	want := map[string][]*x509.Certificate{}
	for owner := range res.Owners {
		if drop(owner) {
			want[owner] = nil
		}
	}
	if len(want) == 0 && !res.Leftover(es) {
		return nil
	}
	_, err = store.Apply(ctx, es, want, exportMode)
	return err
}

// releaseExportTrust removes every peer CA an export granted, when the export is deleted.
func (e *Exporter) releaseExportTrust(ctx context.Context, exp *v1alpha1.ClusterExport) error {
	prefix := "export/" + exp.Name + "/"
	t := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	if err := e.release(ctx, t, func(owner string) bool { return strings.HasPrefix(owner, prefix) }); err != nil {
		return fmt.Errorf("failed to remove the transport trust of export %s/%s: %w", exp.Namespace, exp.Name, err)
	}
	return nil
}

// collectTrust removes peer CAs that nothing justifies any more (see trustUnjustified), covering
// what stream messages could miss while the agent was down.
func (e *Exporter) collectTrust(ctx context.Context) error {
	targets := e.sweepTargets(func(st *linkState) *elastic.Target {
		if st.trust == nil {
			return nil
		}
		return &st.trust.target
	})
	var firstErr error
	for t := range targets {
		es, ok := e.cfg.Cache.Elasticsearch(t.Namespace, t.Name)
		if !ok || wiring.TransportCAConfigMapOf(es) == "" {
			continue // without a CA ConfigMap there is no trust of ours
		}
		err := e.release(ctx, t, func(owner string) bool {
			why := e.trustUnjustified(t.Namespace, owner)
			if why != "" {
				e.log.Info("removing an unused peer transport CA", "elasticsearch", t.String(), "owner", owner, "reason", why)
			}
			return why != ""
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// trustUnjustified says why the peer CA of an owner should go, or "" when it may stay.
func (e *Exporter) trustUnjustified(ns, owner string) string {
	if !strings.HasPrefix(owner, "export/") {
		return "" // the importer's
	}
	exportName, peer, id, ok := parseTrustOwner(owner)
	if !ok {
		return "malformed owner"
	}
	if !e.cfg.Cache.HasPeer(peer) {
		return "peer " + peer + " is gone"
	}
	exp, ok := e.cfg.Cache.ClusterExportSpec(ns, exportName)
	switch {
	case !ok:
		return "export " + ns + "/" + exportName + " is gone"
	case !e.usesTrust(exp):
		return "export " + ns + "/" + exportName + " no longer uses the certificate model"
	case !exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch):
		return "export " + ns + "/" + exportName + " no longer grants " + peer + " link " + id.String()
	case !e.cfg.CertificateModel:
		return "the certificate model is turned off on this agent (certificateModel.enabled)"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st, known := e.links[peer][id]
	if known && st.req != nil && (st.req.GetExportNamespace() != ns || st.req.GetExportName() != exportName) {
		return "link " + id.String() + " now imports another export"
	}
	if known && st.req != nil {
		if asked := e.requestedModel(st.req); asked != "" && asked != v1alpha1.SecurityModelCertificate {
			return "link " + id.String() + " asks for the " + string(asked) + " model"
		}
	}
	if e.inventry[peer] && (!known || st.removed) {
		return "peer " + peer + " no longer imports link " + id.String()
	}
	return ""
}

// exportStatus reports the conditions of an export with model certificate: the address, the
// deprecation warning, which does not affect Ready, and whether its consumers keep up with the
// transport CA (PeersCurrent). The remote cluster server is not used by this model, so its
// condition goes.
func (m certificateModel) exportStatus(ctx context.Context, exp *v1alpha1.ClusterExport) (exportStatus, error) {
	e := m.e
	ns, esName := exp.Namespace, exp.Spec.ElasticsearchRef.Name
	_, found := e.cfg.Cache.Elasticsearch(ns, esName)
	requeue := time.Duration(0)
	addr, serverName, err := e.portAddress(ctx, exp, m.port())
	addrStatus, addrReason, addrMsg := addressCondition(exp, addr, "the transport port at ", err)
	if err != nil {
		requeue = 10 * time.Second
	}
	// The consumer applies this side's transport CA here too, so the CA warnings apply; with no
	// API key, the key warning never does (lag.go).
	return exportStatus{addr: addr, serverName: serverName, requeue: requeue,
		conditions: func(x *v1alpha1.ClusterExport) {
			kube.Set(x, kube.NewCondition(x, v1alpha1.ConditionAddressResolved, addrStatus, addrReason, addrMsg))
			kube.Set(x, kube.NewCondition(x, v1alpha1.ConditionSecurityModelCurrent, metav1.ConditionFalse,
				v1alpha1.ReasonDeprecatedSecurityModel, v1alpha1.DeprecatedModelMessage))
			kube.Set(x, e.certificateModelCondition(x))
			kube.Remove(x, v1alpha1.ConditionRemoteClusterServerEnabled)
		},
		ready: func(x *v1alpha1.ClusterExport) metav1.Condition {
			if !found {
				return kube.NewCondition(x, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonElasticsearchNotFound,
					fmt.Sprintf("Elasticsearch %s not found in namespace %s", esName, ns))
			}
			return peerhealth.Ready(x, v1alpha1.ConditionAddressResolved, v1alpha1.ConditionCertificateModelEnabled)
		},
	}, nil
}

// usesTrust says whether the links of exp hold peer CAs in the transport trust: whether its
// model is this one.
func (e *Exporter) usesTrust(exp *v1alpha1.ClusterExport) bool {
	_, ok := e.modelOf(exp).(certificateModel)
	return ok
}

// certificateModelCondition says whether this agent lets a certificate-model export serve peers.
func (e *Exporter) certificateModelCondition(x *v1alpha1.ClusterExport) metav1.Condition {
	if !e.cfg.CertificateModel {
		return kube.NewCondition(x, v1alpha1.ConditionCertificateModelEnabled, metav1.ConditionFalse,
			v1alpha1.ReasonCertificateModelDisabled, v1alpha1.CertificateModelDisabledMessage+"; until then every peer is refused")
	}
	return kube.NewCondition(x, v1alpha1.ConditionCertificateModelEnabled, metav1.ConditionTrue,
		v1alpha1.ReasonCertificateModelAllowed, "the exporting agent allows the certificate security model (certificateModel.enabled)")
}

// dropModelWarning removes the certificate model's warning and gate from an export now on the
// API-key model.
func dropModelWarning(x kube.Conditioned) {
	kube.Remove(x, v1alpha1.ConditionSecurityModelCurrent, v1alpha1.ConditionCertificateModelEnabled)
}

// consumerTransportCA validates the importing Elasticsearch's transport CA a certificate-model
// import request carries: one self-signed CA, the consumer's own (its nodes chain to it, and
// nothing else joins the transport trust with it, see pemutil.ValidateSelfSignedCA).
func consumerTransportCA(exp *v1alpha1.ClusterExport, bundle []byte, now time.Time) (*x509.Certificate, *peering.RefusalError) {
	if len(bundle) == 0 {
		return nil, &peering.RefusalError{Reason: v1alpha1.ReasonTransportCAMissing, Message: "export " + exp.Name +
			" uses the certificate model, which needs the importing Elasticsearch's transport CA; none was sent (ECK has not issued it yet, or the importing agent predates the certificate model)"}
	}
	ca, err := pemutil.ValidateSelfSignedCA(bundle, now, pemutil.DefaultLimits)
	if err != nil {
		return nil, &peering.RefusalError{Reason: v1alpha1.ReasonInvalidTransportCA, Message: "transport_ca_bundle must be exactly one self-signed CA certificate, the importing Elasticsearch's transport CA: " + err.Error()}
	}
	return ca, nil
}
