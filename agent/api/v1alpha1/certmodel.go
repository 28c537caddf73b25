package v1alpha1

// Conditions and reasons of the certificate security model.
const (
	// ConditionSecurityModelCurrent is False on a ClusterExport or RemoteCluster that uses the
	// certificate security model, which Elastic deprecates: a warning that does not affect Ready.
	// It is absent with the API-key model.
	ConditionSecurityModelCurrent = "SecurityModelCurrent"
	// ReasonDeprecatedSecurityModel means the link uses the certificate security model.
	ReasonDeprecatedSecurityModel = "DeprecatedSecurityModel"
	// ReasonCertificateModel is the reason of a RemoteCluster's CredentialsApplied condition with
	// the certificate model, which needs no credentials.
	ReasonCertificateModel = "CertificateModel"
	// ReasonWaitingForECK means the agent wrote a CA and ECK has not yet copied it into the
	// Elasticsearch's transport certificates.
	ReasonWaitingForECK = "WaitingForECK"
	// ReasonTransportCAMissing means a peer asked for a certificate-model link without sending
	// its transport CA.
	ReasonTransportCAMissing = "TransportCAMissing"
	// ReasonInvalidTransportCA means a peer's transport CA is not exactly one valid, self-signed
	// CA certificate.
	ReasonInvalidTransportCA = "InvalidTransportCA"
	// ReasonModelNotAllowed means the two sides disagree on the security model: a peer answered
	// a RemoteCluster with credentials of another model than its spec.model (refused, nothing
	// applied), or an export refused a RemoteCluster that asks for another model than its own.
	ReasonModelNotAllowed = "ModelNotAllowed"
	// ConditionCertificateModelEnabled is present on a ClusterExport with model certificate:
	// False while the exporting agent does not allow that model (setting
	// certificateModel.enabled), when peers get a refusal with ReasonCertificateModelDisabled.
	ConditionCertificateModelEnabled = "CertificateModelEnabled"
	// ReasonCertificateModelDisabled means the agent's setting certificateModel.enabled is off.
	ReasonCertificateModelDisabled = "CertificateModelDisabled"
	// ReasonCertificateModelAllowed means the agent's setting certificateModel.enabled is on.
	ReasonCertificateModelAllowed = "CertificateModelAllowed"
)

// CertificateModelDisabledMessage explains, on an export and in the peers' refusal, why a
// certificate-model export serves nobody.
const CertificateModelDisabledMessage = "the certificate security model is turned off on the exporting agent: it gives the " +
	"consumer's nodes transport-level access, near-full read access to this cluster. Turn it on with the chart value " +
	"certificateModel.enabled (agent setting certificateModel.enabled, flag --certificate-model) if you accept that, " +
	"or use model apiKey"

// DeprecatedModelMessage is the message of ConditionSecurityModelCurrent with the certificate
// model.
const DeprecatedModelMessage = "the certificate security model (TLS on the transport port, mutual trust of transport CAs) " +
	"is deprecated by Elastic since Elasticsearch 9.0: a local superuser gets full read access to the remote cluster. " +
	"Use model apiKey (Elasticsearch 8.14 or later: remote cluster server on port 9443 with cross-cluster API keys " +
	"that ecklink scopes and rotates)"
