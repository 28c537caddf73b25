package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// SecurityModel is how a remote cluster authenticates and authorizes cross-cluster requests.
// +kubebuilder:validation:Enum=apiKey;certificate
type SecurityModel string

const (
	// SecurityModelAPIKey uses the remote cluster server (port 9443) and a cross-cluster API key
	// that the exporting side creates, scopes and rotates.
	SecurityModelAPIKey SecurityModel = "apiKey"
	// SecurityModelCertificate uses the transport port (9300) and mutual trust of the two
	// clusters' transport CAs; Elastic deprecates it.
	SecurityModelCertificate SecurityModel = "certificate"
)

// StrongIdentityMode is whether cross-cluster requests must be signed by the consumer
// (Elasticsearch 9.3+ strong identity verification).
// +kubebuilder:validation:Enum=Required;Preferred;Disabled
type StrongIdentityMode string

const (
	// StrongIdentityRequired refuses links that cannot use strong identity verification.
	StrongIdentityRequired StrongIdentityMode = "Required"
	// StrongIdentityPreferred uses strong identity verification where both sides can (9.3+, an
	// agent that offers it) and links without it elsewhere, saying why.
	StrongIdentityPreferred StrongIdentityMode = "Preferred"
	// StrongIdentityDisabled links without signed requests.
	StrongIdentityDisabled StrongIdentityMode = "Disabled"
)

// ElasticsearchReference names an ECK Elasticsearch resource in the namespace of the object
// that holds the reference. There is deliberately no namespace: namespace RBAC decides who may
// expose or consume which cluster.
type ElasticsearchReference struct {
	// Name of the Elasticsearch resource, in the same namespace as this object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// CertificateInfo describes one CA certificate without its key material.
type CertificateInfo struct {
	// Fingerprint is the SHA-256 fingerprint of the DER certificate, as lower-case hex.
	// +kubebuilder:validation:MaxLength=64
	Fingerprint string `json:"fingerprint"`
	// Subject is the certificate's subject distinguished name, clipped to 256 characters
	// (certificates come from peers).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Subject string `json:"subject,omitempty"`
	// NotAfter is the end of the certificate's validity.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}
