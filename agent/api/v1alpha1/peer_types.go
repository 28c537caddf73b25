package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// PeerSpec is what this agent knows about another environment's agent. `agentctl pair` writes it.
// +kubebuilder:validation:XValidation:rule="!has(self.dial) || !self.dial || (has(self.endpoints) && size(self.endpoints) > 0)",message="endpoints are required when dial is true",fieldPath=".endpoints"
type PeerSpec struct {
	// Environment is the peer's environment name, as RemoteCluster.spec.peer and
	// ClusterExport.spec.peers refer to it. It must equal the Peer's metadata.name, which makes
	// environment names unique among the Peers of an agent. A lower-case DNS label.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Environment string `json:"environment"`

	// CABundle is the PEM-encoded bundle of the peer's agent CA certificates. This agent trusts
	// only these CAs for the peer's mutual TLS; the peer sends updates over the stream before it
	// rotates its CA.
	// +kubebuilder:validation:MinLength=1
	CABundle string `json:"caBundle"`

	// Endpoints are the peer agent's gRPC addresses as host:port (DNS name, IPv4 address or
	// bracketed IPv6 address; port 1-65535), tried in order when this side dials.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`
	Endpoints []string `json:"endpoints,omitempty"`

	// Dial makes this agent open the peering stream to Endpoints. When false, this agent waits
	// for the peer to dial in (for example when only the peer can reach this environment).
	// +optional
	Dial bool `json:"dial,omitempty"`
}

// PeerStatus is the observed state of the peering.
type PeerStatus struct {
	// Conditions: Connected (the stream is up and heartbeats arrive) and TrustCurrent (this agent
	// holds the peer's current, unexpired agent CA bundle).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// LastHeartbeat is when the last heartbeat from the peer arrived.
	// +optional
	LastHeartbeat *metav1.Time `json:"lastHeartbeat,omitempty"`

	// PeerVersion is the ecklink version the peer agent reported when the stream opened
	// (clipped to 64 characters).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PeerVersion string `json:"peerVersion,omitempty"`

	// CertificateAuthorities describes the CA certificates in the peer's current agent CA bundle.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	CertificateAuthorities []CertificateInfo `json:"certificateAuthorities,omitempty"`

	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Peer is another environment's ecklink agent that this agent is paired with. It lives in the
// agent's namespace; `agentctl pair` creates it and `agentctl unpair` deletes it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ecpeer,categories=ecklink
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="Connected",type=string,JSONPath=`.status.conditions[?(@.type=="Connected")].status`
// +kubebuilder:printcolumn:name="Last-Heartbeat",type=date,JSONPath=`.status.lastHeartbeat`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.environment",message="metadata.name must equal spec.environment"
type Peer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec identifies the peer and how to reach it.
	Spec PeerSpec `json:"spec"`
	// Status is the observed state of the peering.
	// +optional
	Status PeerStatus `json:"status,omitempty"`
}

// PeerList is a list of Peers.
//
// +kubebuilder:object:root=true
type PeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Peers.
	Items []Peer `json:"items"`
}
