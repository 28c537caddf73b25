package v1alpha1

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ClusterExportSpec is the data owner's decision to let peers reach one Elasticsearch.
// +kubebuilder:validation:XValidation:rule="(has(self.model) && self.model == 'certificate') || has(self.access)",message="access is required when model is apiKey",fieldPath=".access"
// +kubebuilder:validation:XValidation:rule="!(has(self.model) && self.model == 'certificate') || !has(self.access)",message="access applies only to model apiKey: with model certificate the exporting cluster's roles authorize requests",fieldPath=".access"
// +kubebuilder:validation:XValidation:rule="!(has(self.model) && self.model == 'certificate') || !has(self.apiKey)",message="apiKey applies only to model apiKey",fieldPath=".apiKey"
// +kubebuilder:validation:XValidation:rule="!has(self.proxyAddress) || !has(self.service)",message="set proxyAddress or service, not both",fieldPath=".service"
// +kubebuilder:validation:XValidation:rule="!(has(self.model) && self.model == 'certificate') || !has(self.strongIdentity) || self.strongIdentity == 'Disabled'",message="strongIdentity applies only to model apiKey",fieldPath=".strongIdentity"
// +kubebuilder:validation:XValidation:rule="has(self.peers) || has(self.grants)",message="name the environments this export serves in peers (whole environments) or grants (some namespaces of an environment)",fieldPath=".peers"
// +kubebuilder:validation:XValidation:rule="!has(self.peers) || !has(self.grants) || self.grants.all(g, !(g.peer in self.peers))",message="an environment is either in peers (all its namespaces) or in grants (the namespaces named there), not in both",fieldPath=".grants"
type ClusterExportSpec struct {
	// ElasticsearchRef names the exported Elasticsearch, which must be in the ClusterExport's
	// namespace.
	ElasticsearchRef ElasticsearchReference `json:"elasticsearchRef"`

	// Peers are the environment names (Peer spec.environment) that may connect to this
	// Elasticsearch from any of their namespaces. A peer obtains nothing that an export does not
	// grant to it by name, here or in grants.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Peers []string `json:"peers,omitempty"`

	// Grants are narrower than peers: each names an environment and the namespaces (and,
	// optionally, the Elasticsearch names in them) whose RemoteClusters it serves there. An
	// import from any other namespace or Elasticsearch of that environment is refused with
	// PeerNotGranted, the same answer as for an export that does not exist, so that peers
	// cannot probe what is exported.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=peer
	Grants []ExportGrant `json:"grants,omitempty"`

	// Model is the security model: apiKey (default; remote cluster server on port 9443 and a
	// cross-cluster API key per consumer, scoped by access and rotated by the agent) or
	// certificate (transport port 9300 and exchanged transport CAs; deprecated by Elastic).
	// +kubebuilder:default=apiKey
	// +optional
	Model SecurityModel `json:"model,omitempty"`

	// Access is what the cross-cluster API keys grant, as in the Elasticsearch cross-cluster API
	// key API. Required with model apiKey, and it must grant search or replication; not allowed
	// with model certificate.
	// +optional
	Access *CrossClusterAccess `json:"access,omitempty"`

	// APIKey sets the lifetime and rotation of the cross-cluster API keys (model apiKey only).
	// +optional
	APIKey *APIKeySettings `json:"apiKey,omitempty"`

	// ProxyAddress is the host:port peers dial (DNS name, IPv4 address or bracketed IPv6 address).
	// When empty, the agent takes the address from the load balancer status of Service.
	// +optional
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`
	ProxyAddress string `json:"proxyAddress,omitempty"`

	// Service names the Service, in the ClusterExport's namespace, whose load balancer status
	// gives the address peers dial when proxyAddress is empty. It must target port 9443 (model
	// apiKey). Defaults to <es>-es-remote-cluster (a LoadBalancer with ECK >= 3.3; with ECK
	// 3.0-3.2 create your own, e.g. <es>-es-remote-cluster-lb), or <es>-es-transport with model
	// certificate.
	// +optional
	Service *ServiceReference `json:"service,omitempty"`

	// ServerName is the TLS server name peers send and verify. Defaults to
	// <es>-es-remote-cluster.<namespace>.svc (model apiKey) or <es>-es-transport.<namespace>.svc
	// (model certificate), names that ECK's certificates contain.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServerName string `json:"serverName,omitempty"`

	// StrongIdentity is whether peers' cross-cluster requests must be signed (Elasticsearch 9.3+
	// strong identity verification: the remote trusts the consumer's signing CA and the API key
	// names the consumer's signing certificate subject, so a copy of the key alone is useless).
	// Required: the agents set it up on every link where both sides run 9.3 or later (the
	// remote trusts the consumer's signing CA, the consumer signs, then the key requires its
	// signing subject; status.links[].strongIdentity shows the step); a link where either side
	// is below 9.3 is refused, and its keys invalidated, with a refusal that says which side.
	// Preferred: as Required where both sides run 9.3 or later and the consumer's agent offers
	// it; elsewhere the link runs without, and its RemoteCluster's StrongIdentity condition
	// (reason StrongIdentityUnavailable) and status.links[].strongIdentity (Unavailable) say why.
	// Disabled: requests are not signed (a live link is taken back in the reverse order).
	// When unset, as Disabled: strong identity is a technical preview in self-managed
	// Elasticsearch 9.3, so the agent does not turn it on by itself.
	// +optional
	StrongIdentity StrongIdentityMode `json:"strongIdentity,omitempty"`

	// EnableRemoteClusterServer lets the agent set spec.remoteClusterServer.enabled on the
	// Elasticsearch resource (model apiKey). Opt-in because ECK then restarts every node.
	// When false and the server is off, the export reports RemoteClusterServerEnabled False.
	// +optional
	EnableRemoteClusterServer bool `json:"enableRemoteClusterServer,omitempty"`
}

// ExportGrant grants an export to some namespaces (and Elasticsearch names) of one peer
// environment.
type ExportGrant struct {
	// Peer is the environment name (Peer spec.environment).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Peer string `json:"peer"`
	// Namespaces are the namespaces, in the peer environment, of the consuming Elasticsearch
	// (and its RemoteCluster).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces"`
	// Elasticsearch, when set, are the names of the consuming Elasticsearch resources in those
	// namespaces; unset means any Elasticsearch of those namespaces.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Elasticsearch []string `json:"elasticsearch,omitempty"`
}

// Serves reports whether the export serves the consuming Elasticsearch es in namespace ns of
// environment peer: peer is in spec.peers, or a grant of peer names ns (and es, when it names
// Elasticsearch resources).
func (s *ClusterExportSpec) Serves(peer, ns, es string) bool {
	if slices.Contains(s.Peers, peer) {
		return true
	}
	for _, g := range s.Grants {
		if g.Peer == peer && slices.Contains(g.Namespaces, ns) && (len(g.Elasticsearch) == 0 || slices.Contains(g.Elasticsearch, es)) {
			return true
		}
	}
	return false
}

// NamesPeer reports whether the export grants anything to environment peer.
func (s *ClusterExportSpec) NamesPeer(peer string) bool {
	return slices.Contains(s.Peers, peer) || slices.ContainsFunc(s.Grants, func(g ExportGrant) bool { return g.Peer == peer })
}

// GrantedPeers lists the environments the export grants anything to, sorted.
func (s *ClusterExportSpec) GrantedPeers() []string {
	out := slices.Clone(s.Peers)
	for _, g := range s.Grants {
		out = append(out, g.Peer)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CrossClusterAccess is the access of a cross-cluster API key, as in the Elasticsearch API.
// +kubebuilder:validation:XValidation:rule="(has(self.search) && size(self.search) > 0) || (has(self.replication) && size(self.replication) > 0)",message="access must grant search or replication"
type CrossClusterAccess struct {
	// Search grants cross-cluster search on index patterns.
	// +optional
	// +listType=atomic
	Search []SearchAccess `json:"search,omitempty"`
	// Replication grants cross-cluster replication (following leader indices) on index patterns.
	// +optional
	// +listType=atomic
	Replication []ReplicationAccess `json:"replication,omitempty"`
}

// SearchAccess grants cross-cluster search on some indices.
type SearchAccess struct {
	// Names are index names or patterns (wildcards allowed) the peer may search.
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	// +kubebuilder:validation:items:MinLength=1
	Names []string `json:"names"`
	// Query is a document-level security query (Elasticsearch query DSL) limiting the readable
	// documents.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Query *runtime.RawExtension `json:"query,omitempty"`
	// FieldSecurity limits the readable fields (field-level security).
	// +optional
	FieldSecurity *FieldSecurity `json:"fieldSecurity,omitempty"`
	// AllowRestrictedIndices lets Names match restricted indices such as .security.
	// +optional
	AllowRestrictedIndices bool `json:"allowRestrictedIndices,omitempty"`
}

// FieldSecurity is field-level security, as in Elasticsearch role descriptors.
type FieldSecurity struct {
	// Grant are the field names or patterns that may be read.
	// +optional
	// +listType=atomic
	Grant []string `json:"grant,omitempty"`
	// Except are field names or patterns excluded from Grant.
	// +optional
	// +listType=atomic
	Except []string `json:"except,omitempty"`
}

// ReplicationAccess grants cross-cluster replication on some indices.
type ReplicationAccess struct {
	// Names are index names or patterns (wildcards allowed) the peer may replicate.
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	// +kubebuilder:validation:items:MinLength=1
	Names []string `json:"names"`
	// AllowRestrictedIndices lets Names match restricted indices.
	// +optional
	AllowRestrictedIndices bool `json:"allowRestrictedIndices,omitempty"`
}

// APIKeySettings are the lifetime and rotation of the cross-cluster API keys of an export.
// The rules parse durations only once they match the fields' pattern, so that a malformed value
// reports the pattern and not a CEL conversion error.
// +kubebuilder:validation:XValidation:rule="!has(self.expiration) || !self.expiration.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.expiration) > duration('0s')",message="expiration must be positive (for keys that never expire, set neverExpire: true instead)",fieldPath=".expiration"
// +kubebuilder:validation:XValidation:rule="!has(self.rotateBefore) || !self.rotateBefore.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || (has(self.expiration) ? (!self.expiration.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.rotateBefore) < duration(self.expiration)) : duration(self.rotateBefore) < duration('2160h'))",message="rotateBefore must be shorter than expiration (default 2160h)",fieldPath=".rotateBefore"
// +kubebuilder:validation:XValidation:rule="!(has(self.neverExpire) && self.neverExpire) || (!has(self.expiration) && !has(self.rotateBefore))",message="neverExpire excludes expiration and rotateBefore",fieldPath=".neverExpire"
type APIKeySettings struct {
	// Expiration is the lifetime of each API key, as a Go duration such as 2160h. When unset,
	// 2160h (90 days): keys expire by default, so a copied key stops working on its own.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`
	Expiration *metav1.Duration `json:"expiration,omitempty"`
	// RotateBefore is how long before expiry the agent creates the successor key (make before
	// break: the old key is invalidated once the peer reports the new one connected). When
	// unset, the agent rotates after two thirds of a key's lifetime.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$`
	RotateBefore *metav1.Duration `json:"rotateBefore,omitempty"`
	// NeverExpire asks for keys that never expire, which the agent then replaces only when
	// access changes or links go away. Only for peers that cannot take a rotation; a key that
	// leaks stays valid until someone invalidates it.
	// +optional
	NeverExpire bool `json:"neverExpire,omitempty"`
}

// DefaultKeyLifetime is the lifetime of cross-cluster API keys when an export sets none.
const DefaultKeyLifetime = 90 * 24 * time.Hour

// KeyLifetime returns the lifetime of the export's keys (0: they never expire) and how long
// before expiry the successor is created (spec.apiKey.rotateBefore, else a third of the
// lifetime, so that keys are rotated at two thirds of their life).
func (s *ClusterExportSpec) KeyLifetime() (lifetime, rotateBefore time.Duration) {
	lifetime = DefaultKeyLifetime
	k := s.APIKey
	if k != nil && k.NeverExpire {
		return 0, 0
	}
	if k != nil && k.Expiration != nil {
		lifetime = k.Expiration.Duration
	}
	if k != nil && k.RotateBefore != nil {
		return lifetime, k.RotateBefore.Duration
	}
	return lifetime, lifetime / 3
}

// ServiceReference names a Service in the namespace of the object that holds the reference.
type ServiceReference struct {
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// ClusterExportStatus is the observed state of an export.
type ClusterExportStatus struct {
	// Conditions: RemoteClusterServerEnabled, AddressResolved, KeysManaged and Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ProxyAddress is the resolved host:port sent to peers.
	// +optional
	ProxyAddress string `json:"proxyAddress,omitempty"`
	// ServerName is the resolved TLS server name sent to peers.
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// Links are the peers' RemoteClusters that consume this export, one per peer, consumer
	// Elasticsearch and alias: at most 100, shared out fairly between peers when there are
	// more (linkCount says how many), sorted by peer and link.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Links []ExportLink `json:"links,omitempty"`
	// LinkCount is how many links the export serves, listed in links or not.
	// +optional
	LinkCount int `json:"linkCount,omitempty"`
}

// ExportLink is one consumer of an export: a RemoteCluster in a peer environment.
type ExportLink struct {
	// Peer is the consumer's environment name.
	// +kubebuilder:validation:MaxLength=63
	Peer string `json:"peer"`
	// LocalNamespace is the namespace of the consumer's Elasticsearch in the peer environment.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	LocalNamespace string `json:"localNamespace,omitempty"`
	// LocalElasticsearch is the name of the consumer's Elasticsearch in the peer environment.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LocalElasticsearch string `json:"localElasticsearch,omitempty"`
	// Alias is the remote cluster alias the consumer uses for this export.
	// +kubebuilder:validation:MaxLength=63
	Alias string `json:"alias"`
	// APIKeyID is the id of the current cross-cluster API key (never the key itself).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	APIKeyID string `json:"apiKeyId,omitempty"`
	// Created is when the current API key was created.
	// +optional
	Created *metav1.Time `json:"created,omitempty"`
	// Expires is when the current API key expires; unset when it never expires.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
	// LastAcknowledged is when the peer last acknowledged the material for this link.
	// +optional
	LastAcknowledged *metav1.Time `json:"lastAcknowledged,omitempty"`
	// Connected is whether the peer last reported the remote cluster as connected.
	Connected bool `json:"connected"`
	// Message explains the link's state when it is not connected. Text from the peer is
	// clipped to 256 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// StrongIdentity is the link's strong identity step: TrustPending (the consumer's signing CA
	// is not yet visible to every node), SigningPending (trusted; the consumer does not sign
	// yet), Enforced (the key requires the consumer's signing subject), and while turning it
	// off IdentityClearing, SigningStopping, TrustReleasing; Unavailable when the export prefers
	// it but a side cannot (the RemoteCluster's StrongIdentity condition says why). Empty without
	// strong identity.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	StrongIdentity string `json:"strongIdentity,omitempty"`
}

// ClusterExport lets paired peers connect to an Elasticsearch in this namespace with the given
// access. It lives in the namespace of the Elasticsearch it exports.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=ecexport,categories=ecklink
// +kubebuilder:printcolumn:name="Elasticsearch",type=string,JSONPath=`.spec.elasticsearchRef.name`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterExport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says which Elasticsearch is exported, to which peers, with what access.
	Spec ClusterExportSpec `json:"spec"`
	// Status is the observed state of the export and its links.
	// +optional
	Status ClusterExportStatus `json:"status,omitempty"`
}

// ClusterExportList is a list of ClusterExports.
//
// +kubebuilder:object:root=true
type ClusterExportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ClusterExports.
	Items []ClusterExport `json:"items"`
}
