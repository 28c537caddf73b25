package exporter

import (
	"fmt"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// exportModel is an export's security model, apiKey when unset.
func exportModel(exp *v1alpha1.ClusterExport) v1alpha1.SecurityModel {
	if exp.Spec.Model == v1alpha1.SecurityModelCertificate {
		return v1alpha1.SecurityModelCertificate
	}
	return v1alpha1.SecurityModelAPIKey
}

// requestedModel is the model a RemoteCluster asks for, "" when its agent does not say.
func requestedModel(req *peerv1.ImportRequest) v1alpha1.SecurityModel {
	switch req.GetModel() {
	case peerv1.SecurityModel_SECURITY_MODEL_API_KEY:
		return v1alpha1.SecurityModelAPIKey
	case peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE:
		return v1alpha1.SecurityModelCertificate
	}
	return ""
}

// modelRefusal refuses an import whose RemoteCluster asks for another security model than the
// export's (the consumer decides what it accepts, the exporter what it offers: both must agree),
// and any import of a certificate-model export while this agent does not allow that model.
//
// A consumer agent of release 0.1.0 sends no model (UNSPECIFIED) and takes what the export says:
// it is answered with the export's model, as 0.1.0 exporters did. That is safe for this side,
// whose trust the export and this agent's setting decide; the risk of accepting a model it did
// not ask for is the consumer's, and goes away when the consumer's agent is upgraded.
func (e *Exporter) modelRefusal(peer string, id link.ID, req *peerv1.ImportRequest, exp *v1alpha1.ClusterExport) *peering.RefusalError {
	offered, asked := exportModel(exp), requestedModel(req)
	switch {
	case asked != "" && asked != offered:
		return &peering.RefusalError{Reason: v1alpha1.ReasonModelNotAllowed, Message: fmt.Sprintf(
			"export %s/%s uses the %s security model and the RemoteCluster asks for %s: both sides must name the same model",
			exp.Namespace, exp.Name, offered, asked)}
	case offered == v1alpha1.SecurityModelCertificate && !e.cfg.CertificateModel:
		return &peering.RefusalError{Reason: v1alpha1.ReasonCertificateModelDisabled, Message: v1alpha1.CertificateModelDisabledMessage}
	}
	if asked == "" {
		e.log.Debug("import request without a security model (consumer agent 0.1.0): answering with the export's", "peer", peer, "link", id.String(), "model", offered)
	}
	return nil
}
