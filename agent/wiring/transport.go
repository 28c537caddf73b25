package wiring

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The certificate model's wiring: one ConfigMap named in spec.transport.tls.certificateAuthorities,
// from which ECK adds the peers' transport CAs to the transport trust. The ConfigMap's content is
// transporttrust's; naming it in the resource is this package's.

// AnnotationTransportCA records, on the Elasticsearch resource, the ConfigMap name ecklink set in
// spec.transport.tls.certificateAuthorities (managed mode), so that only that is ever undone.
const AnnotationTransportCA = "ecklink.io/transport-ca-wiring"

var transportCAPath = []string{"spec", "transport", "tls", "certificateAuthorities", "configMapName"}

// TransportCAConfigMapName is the ConfigMap ecklink creates for an Elasticsearch that names none.
func TransportCAConfigMapName(es string) string { return es + "-ecklink-transport-ca" }

// TransportCAConfigMapOf returns the ConfigMap named by es's
// spec.transport.tls.certificateAuthorities, or "".
func TransportCAConfigMapOf(es *unstructured.Unstructured) string {
	name, _, _ := unstructured.NestedString(es.Object, transportCAPath...)
	return name
}

type transportCARecord struct {
	ConfigMapName string `json:"configMapName"`
}

// TransportCAWiredByUs reports whether ecklink set es's transport CA ConfigMap.
func TransportCAWiredByUs(es *unstructured.Unstructured) bool {
	return es.GetAnnotations()[AnnotationTransportCA] != ""
}

// WireTransportCA names ecklink's ConfigMap in es's spec.transport.tls.certificateAuthorities
// and records it (a Change). A ConfigMap the user named is never replaced.
func WireTransportCA(es *unstructured.Unstructured) ([]string, error) {
	want := TransportCAConfigMapName(es.GetName())
	switch current := TransportCAConfigMapOf(es); current {
	case want:
		return nil, nil
	case "":
	default:
		return nil, fmt.Errorf("elasticsearch %s already names ConfigMap %s in spec.transport.tls.certificateAuthorities", es.GetName(), current)
	}
	if err := unstructured.SetNestedField(es.Object, want, transportCAPath...); err != nil {
		return nil, fmt.Errorf("failed to set spec.transport.tls.certificateAuthorities: %w", err)
	}
	if err := writeAnnotation(es, AnnotationTransportCA, transportCARecord{ConfigMapName: want}, false, "transport CA record"); err != nil {
		return nil, err
	}
	return []string{"set spec.transport.tls.certificateAuthorities.configMapName " + want}, nil
}

// UnwireTransportCA takes out what WireTransportCA set, if the spec still holds it, and the
// record (a Change). Objects left empty (tls, transport) go too, so the spec returns to its old
// shape.
func UnwireTransportCA(es *unstructured.Unstructured) ([]string, error) {
	if !TransportCAWiredByUs(es) {
		return nil, nil
	}
	var rec transportCARecord
	if err := readAnnotation(es, AnnotationTransportCA, &rec); err != nil {
		return nil, err
	}
	changes := []string{"remove annotation " + AnnotationTransportCA}
	if rec.ConfigMapName != "" && TransportCAConfigMapOf(es) == rec.ConfigMapName {
		unstructured.RemoveNestedField(es.Object, transportCAPath...)
		for i := len(transportCAPath) - 1; i >= 2; i-- {
			parent, found, _ := unstructured.NestedMap(es.Object, transportCAPath[:i]...)
			if !found || len(parent) > 0 {
				break
			}
			unstructured.RemoveNestedField(es.Object, transportCAPath[:i]...)
		}
		changes = append(changes, "remove spec.transport.tls.certificateAuthorities.configMapName "+rec.ConfigMapName)
	}
	return changes, writeAnnotation(es, AnnotationTransportCA, nil, true, "transport CA record")
}
