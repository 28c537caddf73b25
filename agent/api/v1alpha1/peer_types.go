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

	// CABundle is the PEM-encoded bundle of the peer's agent CA certificates, as pairing wrote
	// it. This agent trusts only these CAs for the peer's mutual TLS until the peer announces a
	// newer bundle over the stream (before it rotates its CA): the agent keeps that one in its
	// own Secret ecklink-peer-trust-<environment> and never rewrites this field, so a Peer kept
	// in Git does not drift. Changing this field replaces what the agent learnt.
	// +kubebuilder:validation:MinLength=1
	CABundle string `json:"caBundle"`

	// Endpoints are the peer agent's gRPC addresses as host:port (DNS name, IPv4 address or
	// bracketed IPv6 address; port 1-65535), tried in order when this side dials, after the
	// endpoints the peer announced itself (status.endpoints).
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

	// State is where the peering stands: Pending (this agent waits for the peer to dial it),
	// Establishing (this agent dials and has not connected yet), Active (the stream is up),
	// Failing (the stream is down after an error, named in stream.lastError), Terminated (the
	// peering is ending: the Peer is being deleted, or the peer ended it).
	// +optional
	State PeerState `json:"state,omitempty"`

	// Endpoints are the peer's advertised endpoints as the peer last announced them over the
	// stream. When this side dials, it tries the endpoint of its last stream first, then these,
	// then spec.endpoints, so it follows a peer whose address changed without a manual step.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=261
	Endpoints []string `json:"endpoints,omitempty"`

	// EndpointsUpdated is when the peer last announced a change of its endpoints.
	// +optional
	EndpointsUpdated *metav1.Time `json:"endpointsUpdated,omitempty"`

	// Stream describes the stream with the peer: connections, errors, refusals and the last
	// updates each side applied.
	// +optional
	Stream *PeerStream `json:"stream,omitempty"`
}

// PeerState is where a peering stands (the states Consul shows for its peerings).
// +kubebuilder:validation:Enum=Pending;Establishing;Active;Failing;Terminated
type PeerState string

// Peer states.
const (
	// PeerStatePending: this agent does not dial and the peer has not connected yet.
	PeerStatePending PeerState = "Pending"
	// PeerStateEstablishing: this agent dials the peer and no stream has opened yet.
	PeerStateEstablishing PeerState = "Establishing"
	// PeerStateActive: the stream is up and heartbeats arrive.
	PeerStateActive PeerState = "Active"
	// PeerStateFailing: the stream is down after an error (stream.lastError); this agent keeps
	// dialing, or waits for the peer to dial again.
	PeerStateFailing PeerState = "Failing"
	// PeerStateTerminated: the peering is ending (the Peer is being deleted, or the peer ended
	// it with agentctl unpair).
	PeerStateTerminated PeerState = "Terminated"
)

// PeerStream describes the stream with a peer. Strings that come from the peer are clipped.
type PeerStream struct {
	// Endpoint is the address of the current (or last) stream when this agent dialed it; empty
	// when the peer dialed this agent.
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Endpoint string `json:"endpoint,omitempty"`
	// LastConnectTime is when a stream last opened (both sides exchanged Open).
	// +optional
	LastConnectTime *metav1.Time `json:"lastConnectTime,omitempty"`
	// LastDisconnectTime is when the last stream ended.
	// +optional
	LastDisconnectTime *metav1.Time `json:"lastDisconnectTime,omitempty"`
	// LastError is why the last stream ended or the last dial failed; empty after a clean end.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LastError string `json:"lastError,omitempty"`
	// LastNackSent is the last update of the peer's that this agent refused.
	// +optional
	LastNackSent *NackRecord `json:"lastNackSent,omitempty"`
	// LastNackReceived is the last update of this agent's that the peer refused.
	// +optional
	LastNackReceived *NackRecord `json:"lastNackReceived,omitempty"`
	// LastApplied is the last update from the peer that this agent applied.
	// +optional
	LastApplied *AppliedUpdate `json:"lastApplied,omitempty"`
	// PeerLastApplied is the last update of this agent's that the peer acknowledged.
	// +optional
	PeerLastApplied *AppliedUpdate `json:"peerLastApplied,omitempty"`
}

// NackRecord is one refused update.
type NackRecord struct {
	// Resource is the refused update's resource key (e.g. credentials/<ns>/<es>/<alias>, trust).
	// +kubebuilder:validation:MaxLength=520
	Resource string `json:"resource"`
	// Sequence is the refused update's sequence.
	// +optional
	Sequence int64 `json:"sequence,omitempty"`
	// Reason is the machine-readable reason, e.g. InvalidCA.
	// +kubebuilder:validation:MaxLength=72
	Reason string `json:"reason"`
	// Message explains the refusal, clipped to 256 characters; never secret material.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// Time is when the refusal was sent or received.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// AppliedUpdate is an update one side applied (acknowledged).
type AppliedUpdate struct {
	// Resource is the update's resource key.
	// +kubebuilder:validation:MaxLength=520
	Resource string `json:"resource"`
	// Sequence is the update's per-resource sequence.
	Sequence int64 `json:"sequence"`
	// Time is when it was acknowledged.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// Peer is another environment's ecklink agent that this agent is paired with. It lives in the
// agent's namespace; `agentctl pair` creates it and `agentctl unpair` deletes it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ecpeer,categories=ecklink
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.spec.environment`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
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
