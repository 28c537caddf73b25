// Package eck names what the ECK operator creates and labels, in one place: the Elasticsearch
// resource's API, the Secrets and Services ECK derives from an Elasticsearch's name, and the
// labels it puts on them. The names follow ECK's own naming (pkg/controller/elasticsearch/label
// and .../services, .../certificates in elastic/cloud-on-k8s); the agent never derives them
// elsewhere.
package eck

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ElasticsearchGVR is the API of ECK's Elasticsearch resource.
var ElasticsearchGVR = schema.GroupVersionResource{Group: "elasticsearch.k8s.elastic.co", Version: "v1", Resource: "elasticsearches"}

// ClusterNameLabel is the label ECK puts on the Secrets, Services and Pods of an Elasticsearch,
// with the Elasticsearch's name as value.
const ClusterNameLabel = "elasticsearch.k8s.elastic.co/cluster-name"

const transportCertsPublicSuffix = "-es-transport-certs-public"

// TransportCertsPublic is the Secret whose ca.crt holds the transport CA bundle of Elasticsearch
// es: its own CA first, then the CAs of spec.transport.tls.certificateAuthorities.
func TransportCertsPublic(es string) string { return es + transportCertsPublicSuffix }

// OfTransportCertsPublic returns the Elasticsearch whose TransportCertsPublic Secret is name.
func OfTransportCertsPublic(name string) (es string, ok bool) {
	return strings.CutSuffix(name, transportCertsPublicSuffix)
}

// HTTPCertsPublic is the Secret whose ca.crt is the HTTP CA of Elasticsearch es.
func HTTPCertsPublic(es string) string { return es + "-es-http-certs-public" }

// ElasticUserSecret is the Secret holding the password of Elasticsearch es's elastic user.
func ElasticUserSecret(es string) string { return es + "-es-elastic-user" }

// SecureSettingsSecret is the Secret into which ECK aggregates the spec.secureSettings Secrets of
// Elasticsearch es; the nodes read their keystore from it.
func SecureSettingsSecret(es string) string { return es + "-es-secure-settings" }

// HTTPService is the Service of Elasticsearch es's HTTP port (9200).
func HTTPService(es string) string { return es + "-es-http" }

// TransportService is the Service of Elasticsearch es's transport port (9300).
func TransportService(es string) string { return es + "-es-transport" }

// RemoteClusterService is the Service of Elasticsearch es's remote cluster server port (9443),
// which ECK creates when spec.remoteClusterServer.enabled is true.
func RemoteClusterService(es string) string { return es + "-es-remote-cluster" }

// FileSettingsSecret is the Secret into which ECK writes the file-based settings of
// Elasticsearch es (key settings.json; with file-based secure settings, state.cluster_secrets).
// ECK mounts it at config/operator, where Elasticsearch watches it.
func FileSettingsSecret(es string) string { return es + fileSettingsSuffix }

const fileSettingsSuffix = "-es-file-settings"

// OfFileSettingsSecret returns the Elasticsearch whose FileSettingsSecret is name.
func OfFileSettingsSecret(name string) (es string, ok bool) {
	return strings.CutSuffix(name, fileSettingsSuffix)
}

// FileSettingsKey is the key of FileSettingsSecret holding settings.json.
const FileSettingsKey = "settings.json"

// FileBasedSecureSettingsAnnotation opts an Elasticsearch into ECK 3.5's file-based secure
// settings (value exactly "true"; Elasticsearch 9.5.0 or later, ignored below): ECK then writes
// the secure settings into FileSettingsSecret instead of SecureSettingsSecret, which it deletes,
// and Elasticsearch reloads them without a restart.
const FileBasedSecureSettingsAnnotation = "eck.k8s.elastic.co/file-based-secure-settings"

// FileBasedSecureSettings reports whether ECK delivers the secure settings of an Elasticsearch
// with these annotations and spec.version through file-based settings, as ECK 3.5 decides it
// (driver/stateful/keystore.go reconcileSecureSettings: version >= 9.5.0 and the annotation
// "true").
func FileBasedSecureSettings(annotations map[string]string, version string) bool {
	if annotations[FileBasedSecureSettingsAnnotation] != "true" {
		return false
	}
	core, _, _ := strings.Cut(version, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return false
		}
		n[i] = v
	}
	return n[0] > 9 || (n[0] == 9 && n[1] >= 5)
}
