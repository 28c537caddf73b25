package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types. All have positive polarity: True is the healthy state.
const (
	// ConditionConnected is True on a Peer while the peering stream is up and heartbeats arrive,
	// and on a RemoteCluster while Elasticsearch reports the remote as connected
	// (GET /_remote/info).
	ConditionConnected = "Connected"
	// ConditionTrustCurrent is True on a Peer while this agent holds the peer's current,
	// unexpired agent CA bundle.
	ConditionTrustCurrent = "TrustCurrent"
	// ConditionReady summarizes a Peer, ClusterExport or RemoteCluster: True when every other
	// condition is True (on a Peer: Connected and TrustCurrent).
	ConditionReady = "Ready"
	// ConditionRemoteClusterServerEnabled is True on a ClusterExport (model apiKey) when the
	// exported Elasticsearch has its remote cluster server enabled.
	ConditionRemoteClusterServerEnabled = "RemoteClusterServerEnabled"
	// ConditionAddressResolved is True on a ClusterExport when the address peers dial is known.
	ConditionAddressResolved = "AddressResolved"
	// ConditionKeysManaged is True on a ClusterExport (model apiKey) while the agent manages the
	// cross-cluster API keys of every link in the exported Elasticsearch; False names the
	// Elasticsearch problem (ElasticsearchUnavailable, APIKeyFailed) while the agent retries.
	ConditionKeysManaged = "KeysManaged"
	// ConditionTrustApplied is True on a RemoteCluster when the remote CA bundle is in the
	// ConfigMap mounted by the local Elasticsearch.
	ConditionTrustApplied = "TrustApplied"
	// ConditionCredentialsApplied is True on a RemoteCluster when the current API key is in the
	// local Elasticsearch's secure settings (model apiKey).
	ConditionCredentialsApplied = "CredentialsApplied"
	// ConditionSettingsApplied is True on a RemoteCluster when cluster.remote.<alias> is set in the
	// local Elasticsearch's persistent cluster settings.
	ConditionSettingsApplied = "SettingsApplied"
	// ConditionStrongIdentity is present on a RemoteCluster whose export requires strong
	// identity verification (Elasticsearch 9.3+), or while it is being turned off: True once the
	// local Elasticsearch signs and the remote key accepts only its signer. It does not count
	// towards Ready.
	ConditionStrongIdentity = "StrongIdentity"
	// ConditionPeerConnected is True on a RemoteCluster while the stream with its peer is up,
	// and on a ClusterExport while the stream with every peer holding one of its links is up:
	// without it, CA and API key updates do not flow (the data path may still work). It does
	// not count towards Ready, but a Ready that is False names the stream when it is down.
	ConditionPeerConnected = "PeerConnected"
	// ConditionProbeSucceeded is True on a RemoteCluster (model apiKey) while the agent's own
	// periodic TLS handshake with the proxy address, sending the server name and verifying with
	// the CA ConfigMap's bundle (what Elasticsearch does), succeeds. It does not count towards
	// Ready.
	ConditionProbeSucceeded = "ProbeSucceeded"
	// ConditionLicenseSufficient is True on a RemoteCluster or ClusterExport when the licenses
	// Elasticsearch reports (GET /_license) allow what the link asks: False names the cluster,
	// its license and what is needed. It counts towards Ready only when False.
	ConditionLicenseSufficient = "LicenseSufficient"
	// ConditionPeersCurrent is present on a ClusterExport (either model) that serves links: True
	// while every consumer keeps up with what the export rotates; False, before anything breaks,
	// when a consumer has not applied the current transport CA within the grace period, when the
	// only CAs it trusts expire within the threshold, or (model apiKey) when the new API key is
	// not in effect on it shortly before the old one expires. The message names the peer, the
	// link and the deadline. It does not count towards Ready: the links still work.
	ConditionPeersCurrent = "PeersCurrent"
)

// Reasons shared by several resources.
const (
	// ReasonReconciling is the reason of a condition the agent has not evaluated yet.
	ReasonReconciling = "Reconciling"
	// ReasonElasticsearchNotFound means the referenced Elasticsearch resource does not exist.
	ReasonElasticsearchNotFound = "ElasticsearchNotFound"
	// ReasonElasticsearchUnavailable means the agent cannot reach the Elasticsearch API.
	ReasonElasticsearchUnavailable = "ElasticsearchUnavailable"
	// ReasonElasticsearchUserPending means the agent's own Elasticsearch user is not provisioned
	// yet, or Elasticsearch has not loaded it yet (ECK's file realm reaches the nodes within the
	// kubelet's sync period); the agent retries.
	ReasonElasticsearchUserPending = "ElasticsearchUserPending"
	// ReasonElasticsearchForbidden means Elasticsearch refused a call for a missing privilege
	// (403): the agent user's roles are not loaded yet or were changed.
	ReasonElasticsearchForbidden = "ElasticsearchForbidden"
	// ReasonPeerNotFound means no Peer exists for the named environment.
	ReasonPeerNotFound = "PeerNotFound"
	// ReasonPeerDisconnected means the peering stream to the peer is down (on a Peer: it broke
	// or the peer closed it; on a RemoteCluster or ClusterExport: whatever the cause, named in
	// the message).
	ReasonPeerDisconnected = "PeerDisconnected"
	// ReasonWaitingForPeer means the agent waits for material or an acknowledgement from the peer.
	ReasonWaitingForPeer = "WaitingForPeer"
	// ReasonApplied means the agent applied the latest material.
	ReasonApplied = "Applied"
	// ReasonApplyFailed means applying failed; the message says why and the agent retries.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonReady is the reason of a True Ready condition. A False Ready condition carries the
	// reason of the first condition that is not True.
	ReasonReady = "Ready"
)

// Reasons of Peer conditions.
const (
	// ReasonStreamEstablished means the mutually authenticated stream is up.
	ReasonStreamEstablished = "StreamEstablished"
	// ReasonDialFailed means this agent could not reach any of the peer's endpoints.
	ReasonDialFailed = "DialFailed"
	// ReasonDialing means this agent dials the peer and no stream has opened yet.
	ReasonDialing = "Dialing"
	// ReasonHandshakeFailed means the TLS handshake or the peer identity check failed.
	ReasonHandshakeFailed = "HandshakeFailed"
	// ReasonHeartbeatTimeout means no heartbeat arrived within the receive deadline.
	ReasonHeartbeatTimeout = "HeartbeatTimeout"
	// ReasonWaitingForDial means this side does not dial and the peer has not connected yet.
	ReasonWaitingForDial = "WaitingForDial"
	// ReasonPeerTerminated means the peer ended the pairing (agentctl unpair).
	ReasonPeerTerminated = "PeerTerminated"
	// ReasonCABundleCurrent means the peer's agent CA bundle is current and valid.
	ReasonCABundleCurrent = "CABundleCurrent"
	// ReasonCABundleExpiringSoon means a peer agent CA expires soon and no successor arrived.
	ReasonCABundleExpiringSoon = "CABundleExpiringSoon"
	// ReasonCABundleExpired means every CA in the peer's bundle has expired.
	ReasonCABundleExpired = "CABundleExpired"
	// ReasonCABundleRejected means the peer sent an invalid bundle; the last good one is kept.
	ReasonCABundleRejected = "CABundleRejected"
)

// Reasons of ClusterExport conditions.
const (
	// ReasonServerEnabled means spec.remoteClusterServer.enabled is true on the Elasticsearch.
	ReasonServerEnabled = "ServerEnabled"
	// ReasonServerDisabled means the remote cluster server is off and the export does not opt
	// in to enabling it (spec.enableRemoteClusterServer).
	ReasonServerDisabled = "ServerDisabled"
	// ReasonServerEnabling means the agent enabled the server and Elasticsearch is restarting.
	ReasonServerEnabling = "ServerEnabling"
	// ReasonAddressFromSpec means the address is spec.proxyAddress.
	ReasonAddressFromSpec = "AddressFromSpec"
	// ReasonAddressFromService means the address comes from the Service's load balancer status.
	ReasonAddressFromService = "AddressFromService"
	// ReasonServiceNotFound means the Service that should give the address does not exist.
	ReasonServiceNotFound = "ServiceNotFound"
	// ReasonLoadBalancerPending means the Service has no load balancer ingress yet.
	ReasonLoadBalancerPending = "LoadBalancerPending"
	// ReasonInvalidServicePort means the Service does not target the remote cluster port 9443.
	ReasonInvalidServicePort = "InvalidServicePort"
	// ReasonAPIKeyFailed means creating, updating or invalidating an API key failed.
	ReasonAPIKeyFailed = "APIKeyFailed"
	// ReasonStrongIdentityUnavailable means the export requires strong identity verification
	// (spec.strongIdentity Required) and the link cannot have it; the message says why.
	ReasonStrongIdentityUnavailable = "StrongIdentityUnavailable"
)

// Reasons of the PeersCurrent condition (ClusterExport).
const (
	// ReasonPeersCurrent means every consumer applied the current transport CA and API key, or
	// has time left to.
	ReasonPeersCurrent = "PeersCurrent"
	// ReasonPeerCANotApplied means a consumer has not applied the export's current transport CA
	// within the grace period (agent setting peerLag.caGrace).
	ReasonPeerCANotApplied = "PeerCANotApplied"
	// ReasonPeerTrustExpiring means every transport CA a consumer trusts for the link expires
	// within the threshold (peerLag.trustExpiry).
	ReasonPeerTrustExpiring = "PeerTrustExpiring"
	// ReasonPeerKeyNotInEffect means the new API key is not in effect on a consumer although the
	// key it uses expires within peerLag.keyLead.
	ReasonPeerKeyNotInEffect = "PeerKeyNotInEffect"
)

// Reasons of RemoteCluster conditions.
const (
	// ReasonPeerNotGranted means the peer reports that no export of that namespace and name
	// grants this environment. The peer does not say whether the export exists, so that a
	// consumer cannot probe what another environment exports.
	ReasonPeerNotGranted = "PeerNotGranted"
	// ReasonAliasConflict means another RemoteCluster already uses the alias on the same
	// Elasticsearch, or the alias is configured outside ecklink.
	ReasonAliasConflict = "AliasConflict"
	// ReasonManualWiringRequired means wiring is manual and the Elasticsearch resource does not
	// yet contain status.wiringSnippet.
	ReasonManualWiringRequired = "ManualWiringRequired"
	// ReasonElasticsearchRestarting means Elasticsearch rolls out a change the agent made.
	ReasonElasticsearchRestarting = "ElasticsearchRestarting"
	// ReasonHotReloaded means the key is in effect without a restart: the Elasticsearch uses
	// ECK 3.5's file-based secure settings (>= 9.5, annotation
	// eck.k8s.elastic.co/file-based-secure-settings) and reports the file settings version that
	// first held the key as applied.
	ReasonHotReloaded = "HotReloaded"
	// ReasonElasticsearchReloading means the Elasticsearch uses file-based secure settings and
	// has not applied the version holding the new key yet (ECK has not written it, the kubelet
	// has not refreshed the file, or Elasticsearch refused it: the message says which).
	ReasonElasticsearchReloading = "ElasticsearchReloading"
	// ReasonRemoteConnected means GET /_remote/info reports the alias as connected.
	ReasonRemoteConnected = "RemoteConnected"
	// ReasonStrongIdentityEnforced means the local Elasticsearch signs and the key requires it.
	ReasonStrongIdentityEnforced = "StrongIdentityEnforced"
	// ReasonStrongIdentityPending means the steps that turn strong identity on are under way
	// (remote trust, local signing, key identity); the message says which one waits.
	ReasonStrongIdentityPending = "StrongIdentityPending"
	// ReasonStrongIdentityDisabling means strong identity is being turned off, in reverse order.
	ReasonStrongIdentityDisabling = "StrongIdentityDisabling"
	// ReasonRemoteNotConnected means GET /_remote/info reports the alias as not connected.
	ReasonRemoteNotConnected = "RemoteNotConnected"
)

// Reasons of the ProbeSucceeded condition.
const (
	// ReasonHandshakeVerified means the probe's TLS handshake succeeded and the certificate
	// chains to the CA ConfigMap's bundle with the server name among its SANs.
	ReasonHandshakeVerified = "HandshakeVerified"
	// ReasonProxyUnreachable means the proxy address accepted no TCP connection from the agent.
	ReasonProxyUnreachable = "ProxyUnreachable"
	// ReasonCertificateUntrusted means the certificate presented does not chain to a CA of the
	// CA ConfigMap's bundle (or it expired, or the ConfigMap holds no CA).
	ReasonCertificateUntrusted = "CertificateUntrusted"
	// ReasonServerNameMismatch means the server name is not among the certificate's SANs.
	ReasonServerNameMismatch = "ServerNameMismatch"
	// The probe also uses ReasonHandshakeFailed: the TLS handshake itself failed.
)

// Reasons of the license preflight (LicenseSufficient).
const (
	// ReasonLicenseSufficient means both licenses allow what the link asks.
	ReasonLicenseSufficient = "LicenseSufficient"
	// ReasonLicenseInsufficient means a cluster's license does not allow what the link asks;
	// the message names the cluster, its license and what is needed.
	ReasonLicenseInsufficient = "LicenseInsufficient"
	// ReasonLicenseUnknown means a license could not be read yet (or the peer's agent does not
	// report it).
	ReasonLicenseUnknown = "LicenseUnknown"
)

// Reasons of the Events a ClusterExport gets when a peer asks to rotate a link's key now
// (agentctl rotate key).
const (
	// ReasonKeyRotationRequested: a new key was made for the peer's request.
	ReasonKeyRotationRequested = "KeyRotationRequested"
	// ReasonKeyRotationDeferred: the link's key was rotated on request within the rate-limit
	// window; the request is answered when the window ends.
	ReasonKeyRotationDeferred = "KeyRotationDeferred"
)

// GetConditions returns the Peer's status conditions.
func (p *Peer) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the Peer's status conditions.
func (p *Peer) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// GetConditions returns the ClusterExport's status conditions.
func (e *ClusterExport) GetConditions() []metav1.Condition { return e.Status.Conditions }

// SetConditions replaces the ClusterExport's status conditions.
func (e *ClusterExport) SetConditions(c []metav1.Condition) { e.Status.Conditions = c }

// GetConditions returns the RemoteCluster's status conditions.
func (r *RemoteCluster) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions replaces the RemoteCluster's status conditions.
func (r *RemoteCluster) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }
