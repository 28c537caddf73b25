package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Wiring is how the local Elasticsearch resource is wired to the Secret and ConfigMap that the
// agent maintains.
// +kubebuilder:validation:Enum=managed;manual
type Wiring string

const (
	// WiringManaged lets the agent add (and later remove) only its own entries to the
	// Elasticsearch resource: the secureSettings entry, nodeSet config keys, volume and mount.
	WiringManaged Wiring = "managed"
	// WiringManual leaves the Elasticsearch resource to the user (or GitOps): the agent reports
	// the snippet to commit in status.wiringSnippet and manages only the Secret and ConfigMap.
	WiringManual Wiring = "manual"
)

// RemoteClusterSpec is the consumer's decision to connect a local Elasticsearch to a peer's
// export.
type RemoteClusterSpec struct {
	// ElasticsearchRef names the local Elasticsearch, which must be in the RemoteCluster's
	// namespace.
	ElasticsearchRef ElasticsearchReference `json:"elasticsearchRef"`

	// Alias is the remote cluster alias in the local Elasticsearch (cluster.remote.<alias>), used
	// in index expressions such as <alias>:logs-*. 1 to 63 characters: letters, digits, '_' and
	// '-', starting with a letter or digit; no dots, spaces or colons, which Elasticsearch
	// rejects in an alias. Unique per local Elasticsearch.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`
	Alias string `json:"alias"`

	// Peer is the environment name of the paired Peer that owns the export.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Peer string `json:"peer"`

	// Export names the ClusterExport in the peer environment.
	Export ExportReference `json:"export"`

	// SkipUnavailable sets cluster.remote.<alias>.skip_unavailable: when true, searches skip
	// this remote cluster while it is unreachable instead of failing. Unset keeps the
	// Elasticsearch default.
	// +optional
	SkipUnavailable *bool `json:"skipUnavailable,omitempty"`

	// Wiring is managed (default: the agent wires the Elasticsearch resource itself) or manual
	// (the agent reports the snippet to add in status.wiringSnippet).
	// +kubebuilder:default=managed
	// +optional
	Wiring Wiring `json:"wiring,omitempty"`

	// Model is the security model this consumer accepts, sent to the peer with the import
	// request. apiKey (default): the remote's CA is trusted by the remote cluster client only
	// (port 9443) and a cross-cluster API key scopes what this cluster may do remotely.
	// certificate: the remote's transport CA joins this Elasticsearch's transport trust (port
	// 9300, which also carries node-to-node traffic), so ask for it only for a remote you trust
	// as much as your own nodes; Elastic deprecates that model. Credentials of another model
	// than this one are refused (reason ModelNotAllowed) and nothing of them is applied: a peer
	// can never widen this cluster's transport trust on its own.
	// +kubebuilder:default=apiKey
	// +optional
	Model SecurityModel `json:"model,omitempty"`
}

// AcceptedModel is the security model the RemoteCluster accepts: spec.model, apiKey when unset.
func (s *RemoteClusterSpec) AcceptedModel() SecurityModel {
	if s.Model == "" {
		return SecurityModelAPIKey
	}
	return s.Model
}

// ExportReference names a ClusterExport in the peer environment.
type ExportReference struct {
	// Namespace of the ClusterExport in the peer environment.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// Name of the ClusterExport.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// RemoteClusterStatus is the observed state of the connection.
type RemoteClusterStatus struct {
	// Conditions: TrustApplied, CredentialsApplied, SettingsApplied, Connected and Ready, with
	// the reason in words when not True.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Model is the security model of the peer's export.
	// +optional
	Model SecurityModel `json:"model,omitempty"`
	// ProxyAddress is the host:port the local Elasticsearch dials, as the peer sent it.
	// +optional
	// +kubebuilder:validation:MaxLength=260
	ProxyAddress string `json:"proxyAddress,omitempty"`
	// ServerName is the TLS server name the local Elasticsearch verifies, as the peer sent it.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
	// RemoteCertificateAuthorities describes the remote CA certificates the local Elasticsearch
	// trusts for this remote cluster.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	RemoteCertificateAuthorities []CertificateInfo `json:"remoteCertificateAuthorities,omitempty"`
	// APIKey describes the applied cross-cluster API key (model apiKey); never the key itself.
	// +optional
	APIKey *AppliedAPIKey `json:"apiKey,omitempty"`
	// LastSync is when the agent last applied material from the peer.
	// +optional
	LastSync *metav1.Time `json:"lastSync,omitempty"`
	// AppliedSequence is the peer's sequence number of the last applied material; the agent
	// rejects older material.
	// +optional
	AppliedSequence int64 `json:"appliedSequence,omitempty"`
	// WiringSnippet is, with wiring manual, the change to make to the Elasticsearch resource
	// (YAML) so that it uses the Secret and ConfigMap the agent maintains.
	// +optional
	WiringSnippet string `json:"wiringSnippet,omitempty"`
}

// AppliedAPIKey identifies an applied cross-cluster API key without its secret.
type AppliedAPIKey struct {
	// ID is the API key id in the peer's Elasticsearch.
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id"`
	// Expiration is when the key expires; unset when it never expires.
	// +optional
	Expiration *metav1.Time `json:"expiration,omitempty"`
	// AppliedAt is when the agent wrote the key into the local secure settings.
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`
	// RotationRequest is the rotation request (annotation ecklink.io/rotate-key-request,
	// agentctl rotate key) the peer made this key for; unset when the key was made for another
	// reason.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RotationRequest string `json:"rotationRequest,omitempty"`
}

// RemoteCluster connects a local Elasticsearch to an Elasticsearch that a peer environment
// exports. It lives in the namespace of the local Elasticsearch.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ecremote,categories=ecklink
// +kubebuilder:printcolumn:name="Elasticsearch",type=string,JSONPath=`.spec.elasticsearchRef.name`
// +kubebuilder:printcolumn:name="Alias",type=string,JSONPath=`.spec.alias`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.spec.peer`
// +kubebuilder:printcolumn:name="Connected",type=string,JSONPath=`.status.conditions[?(@.type=="Connected")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RemoteCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which local Elasticsearch connects to which export, under which alias.
	Spec RemoteClusterSpec `json:"spec"`
	// Status is the observed state of the connection.
	// +optional
	Status RemoteClusterStatus `json:"status,omitempty"`
}

// RemoteClusterList is a list of RemoteClusters.
//
// +kubebuilder:object:root=true
type RemoteClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the RemoteClusters.
	Items []RemoteCluster `json:"items"`
}
