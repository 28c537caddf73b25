// Package wiring connects a local Elasticsearch resource to the Secret and ConfigMap the agent
// manages for it: one secure-settings entry, the remote cluster client TLS settings and one
// ConfigMap volume per node set. Wiring is a one-time change, because the names are stable; later
// rotations change only the content of the Secret and ConfigMap.
//
// Managed mode edits the resource by read-modify-write with optimistic concurrency and touches only
// the entries it added (recorded in an annotation). Server-side apply is not used: ECK's CRD
// declares nodeSets and secureSettings as atomic lists, so an apply would take ownership of the
// user's whole list. Manual mode renders the same change as a snippet for the user or GitOps.
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
