// Package wiring owns every edit ecklink makes to ECK's Elasticsearch resource and every snippet
// it reports instead. The API-key model connects a local Elasticsearch to the Secret and ConfigMap
// the agent manages for it (one secure-settings entry, the remote cluster client TLS settings and
// one ConfigMap volume per node set: Apply, Remove); the certificate model names a transport CA
// ConfigMap (WireTransportCA); strong identity mounts optional volumes (ApplyVolume); the agent's
// user names its Secrets in spec.auth (ApplyAuth); an export turns the remote cluster server on
// (EnableRemoteClusterServer). Wiring is a one-time change, because the names are stable; later
// rotations change only the content of the Secrets and ConfigMaps.
//
// Editor is the one writer: a named Change on a copy of the cached object, an Update only when it
// differs, the Change again on the current object after a conflict. Managed changes touch only
// the entries they added, recorded in annotations. Server-side apply is not used: ECK's CRD
// declares nodeSets and secureSettings as atomic lists, so an apply would take ownership of the
// user's whole list. Callers keep their domain decisions (which volume, which user) and pass
// them as a Change; they never call the API for the resource themselves.
//
// Mode is the wiring mode: ParseMode reads the API value (RemoteCluster spec.wiring) once,
// Mode.Join combines the RemoteClusters of one Elasticsearch, and callers only ask Mode.Edits
// (Managed edits through the Editor; Manual renders Snippet or TransportCASnippet and waits for
// the user). Adding a third mode therefore touches this package, the API enum and tests only:
// the v1alpha1.Wiring constant and its +kubebuilder:validation:Enum value (then make generate
// for the CRD); here, its Mode constant, its case in ParseMode, String and rank (how much it
// leaves to the user, for Join), its answer to Edits (and a new question on Mode, if it behaves
// like neither, asked where Edits is asked today); and cases in mode_test.go and the callers'
// table tests.
package wiring

import "path"

const (
	// ConfigDir is the Elasticsearch config directory inside ECK's pods.
	ConfigDir = "/usr/share/elasticsearch/config"
	// CAVolumeName is the pod volume holding the remote CA bundle.
	CAVolumeName = "ecklink-remote-ca"
	// CAFileKey is the key of the bundle in the ConfigMap.
	CAFileKey = "ca.crt"
	// ContainerName is ECK's Elasticsearch container.
	ContainerName = "elasticsearch"
	// AnnotationWiring records what managed mode added, so removal takes only that.
	AnnotationWiring = "ecklink.io/wiring"

	keySSLEnabled = "xpack.security.remote_cluster_client.ssl.enabled"
	keySSLCAs     = "xpack.security.remote_cluster_client.ssl.certificate_authorities"
)

// CAMountPath is where the bundle's ConfigMap is mounted.
var CAMountPath = path.Join(ConfigDir, CAVolumeName)

// CAFilePath is the bundle's path as listed in certificate_authorities.
var CAFilePath = path.Join(CAMountPath, CAFileKey)

// ECKClientCAs are the entries ECK itself lists in remote_cluster_client.ssl.certificate_authorities
// (transport CA plus user transport CAs, and the CAs of ECK's same-environment remotes). A user list
// replaces ECK's, so ours must keep them, or ECK's own remote clusters break. Listing them does not
// widen transport trust: this setting governs only the remote cluster client.
var ECKClientCAs = []string{
	path.Join(ConfigDir, "transport-certs/ca.crt"),
	path.Join(ConfigDir, "transport-remote-certs/ca.crt"),
}

// CredentialsSecretName is the Secret holding cluster.remote.<alias>.credentials for every alias of
// one local Elasticsearch.
func CredentialsSecretName(es string) string { return es + "-ecklink-remote-credentials" }

// CAConfigMapName is the ConfigMap holding the remote CA bundle of one local Elasticsearch.
func CAConfigMapName(es string) string { return es + "-ecklink-remote-ca" }

// CredentialsKey is the keystore setting of an alias.
func CredentialsKey(alias string) string { return "cluster.remote." + alias + ".credentials" }
