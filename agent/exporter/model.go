package exporter

import (
	"context"
	"fmt"
	"time"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// securityModel is one security model on the exporting side: what a link of an export that uses
// it gets, what it holds in the exported Elasticsearch for the link and how that goes again,
// what the export's pass does and reports, and where peers dial. The exporter picks one per
// export (modelOf) and never asks which one it holds.
type securityModel interface {
	// name is the model as ClusterExport spec.model names it; wire as import requests and
	// credentials name it.
	name() v1alpha1.SecurityModel
	wire() peerv1.SecurityModel
	// disabled refuses every import while this agent's settings do not allow the model (nil: allowed).
	disabled() *peering.RefusalError
	// answer answers a granted import whose model both sides agree on.
	answer(ctx context.Context, q linkQuery) (linkAnswer, error)
	// published runs once the answer's credentials are published: what the link held under
	// another model and no longer needs goes, make-before-break.
	published(ctx context.Context, peer string, id link.ID, st *linkState) error
	// release removes what the model holds for a removed or refused link; every model's runs,
	// whichever answered last, since a link may have moved between models.
	release(ctx context.Context, peer string, id link.ID, st *linkState) error
	// collect removes what the model holds that nothing justifies any more (the periodic sweep),
	// covering what stream messages could miss while the agent was down.
	collect(ctx context.Context) error
	// exportStatus is the model's pass over an export it serves: what it does to the exported
	// Elasticsearch and what it writes to the export's status.
	exportStatus(ctx context.Context, exp *v1alpha1.ClusterExport) (exportStatus, error)
	// port is the port of the exported Elasticsearch that peers dial.
	port() esPort
	// sharesCA says whether its credentials may name the exported CA bundle shared between the
	// links to one Elasticsearch (capability export-ca) rather than carry it inline.
	sharesCA() bool
}

// models are the security models this agent knows, the default (an unset spec.model) first.
func (e *Exporter) models() []securityModel {
	return []securityModel{apiKeyModel{e}, certificateModel{e}}
}

// modelOf is the security model of an export: the one its spec.model names, apiKey when unset.
func (e *Exporter) modelOf(exp *v1alpha1.ClusterExport) securityModel {
	all := e.models()
	for _, m := range all {
		if m.name() == exp.Spec.Model {
			return m
		}
	}
	return all[0]
}

// modelOnWire is the security model credentials name, nil for none.
func (e *Exporter) modelOnWire(w peerv1.SecurityModel) securityModel {
	for _, m := range e.models() {
		if m.wire() == w {
			return m
		}
	}
	return nil
}

// requestedModel is the model a RemoteCluster asks for, "" when its agent does not say.
func (e *Exporter) requestedModel(req *peerv1.ImportRequest) v1alpha1.SecurityModel {
	if m := e.modelOnWire(req.GetModel()); m != nil {
		return m.name()
	}
	return ""
}

// linkQuery is a granted import request as a model answers it.
type linkQuery struct {
	peer   string
	id     link.ID
	req    *peerv1.ImportRequest
	status *peerv1.LinkStatus // the peer's last LinkStatus, nil before the first
	exp    *v1alpha1.ClusterExport
	st     *linkState
}

// linkAnswer is what a link's peer gets: credentials or a refusal, and when to answer again
// (0: at the resync).
type linkAnswer struct {
	creds   *peerv1.Credentials
	refusal *peering.RefusalError
	requeue time.Duration
	// model is the export's model that answered (nil for a refusal before one was chosen).
	model securityModel
}

// refuse is an answer that refuses the link, to be tried again after requeue (0: at the resync).
func refuse(ref *peering.RefusalError, requeue time.Duration) linkAnswer {
	return linkAnswer{refusal: ref, requeue: requeue}
}

// modelRefusal refuses an import whose RemoteCluster asks for another security model than the
// export's (the consumer decides what it accepts, the exporter what it offers: both must agree),
// and any import of an export whose model this agent does not allow.
//
// A consumer agent of release 0.1.0 sends no model (UNSPECIFIED) and takes what the export says:
// it is answered with the export's model, as 0.1.0 exporters did. That is safe for this side,
// whose trust the export and this agent's setting decide; the risk of accepting a model it did
// not ask for is the consumer's, and goes away when the consumer's agent is upgraded.
func (e *Exporter) modelRefusal(peer string, id link.ID, req *peerv1.ImportRequest, exp *v1alpha1.ClusterExport) *peering.RefusalError {
	m := e.modelOf(exp)
	offered, asked := m.name(), e.requestedModel(req)
	if asked != "" && asked != offered {
		return &peering.RefusalError{Reason: v1alpha1.ReasonModelNotAllowed, Message: fmt.Sprintf(
			"export %s/%s uses the %s security model and the RemoteCluster asks for %s: both sides must name the same model",
			exp.Namespace, exp.Name, offered, asked)}
	}
	if ref := m.disabled(); ref != nil {
		return ref
	}
	if asked == "" {
		e.log.Debug("import request without a security model (consumer agent 0.1.0): answering with the export's", "peer", peer, "link", id.String(), "model", offered)
	}
	return nil
}
