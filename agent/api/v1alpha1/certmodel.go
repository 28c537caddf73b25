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
	// ReasonInvalidTransportCA means a peer's transport CA is not a valid CA certificate.
	ReasonInvalidTransportCA = "InvalidTransportCA"
)

// DeprecatedModelMessage is the message of ConditionSecurityModelCurrent with the certificate
// model.
const DeprecatedModelMessage = "the certificate security model (TLS on the transport port, mutual trust of transport CAs) " +
	"is deprecated by Elastic since Elasticsearch 9.0: a local superuser gets full read access to the remote cluster. " +
	"Use model apiKey (Elasticsearch 8.14 or later: remote cluster server on port 9443 with cross-cluster API keys " +
	"that ecklink scopes and rotates)"
