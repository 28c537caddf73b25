package transporttrust

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// AnnotationWiring records, on the Elasticsearch resource, the ConfigMap name ecklink set in
// spec.transport.tls.certificateAuthorities (managed mode), so that only that is ever undone.
const AnnotationWiring = "ecklink.io/transport-ca-wiring"

var caPath = []string{"spec", "transport", "tls", "certificateAuthorities", "configMapName"}

// ConfigMapName is the ConfigMap ecklink creates for an Elasticsearch that names none.
func ConfigMapName(es string) string { return es + "-ecklink-transport-ca" }

// ConfigMapOf returns the ConfigMap named by es's spec.transport.tls.certificateAuthorities, or "".
func ConfigMapOf(es *unstructured.Unstructured) string {
	name, _, _ := unstructured.NestedString(es.Object, caPath...)
	return name
}

type wiringRecord struct {
	ConfigMapName string `json:"configMapName"`
}

// WiredByUs reports whether ecklink set es's transport CA ConfigMap.
func WiredByUs(es *unstructured.Unstructured) bool {
	return es.GetAnnotations()[AnnotationWiring] != ""
}

// Wire names ecklink's ConfigMap in es's spec.transport.tls.certificateAuthorities and records
// it; it reports whether es changed. A ConfigMap the user named is never replaced.
func Wire(es *unstructured.Unstructured) (bool, error) {
	want := ConfigMapName(es.GetName())
	switch current := ConfigMapOf(es); current {
	case want:
		return false, nil
	case "":
	default:
		return false, fmt.Errorf("elasticsearch %s already names ConfigMap %s in spec.transport.tls.certificateAuthorities", es.GetName(), current)
	}
	if err := unstructured.SetNestedField(es.Object, want, caPath...); err != nil {
		return false, fmt.Errorf("failed to set spec.transport.tls.certificateAuthorities: %w", err)
	}
	data, _ := json.Marshal(wiringRecord{ConfigMapName: want})
	ann := es.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationWiring] = string(data)
	es.SetAnnotations(ann)
	return true, nil
}

// Unwire takes out what Wire set, if the spec still holds it, and the record; it reports whether
// es changed. Objects left empty (tls, transport) go too, so the spec returns to its old shape.
func Unwire(es *unstructured.Unstructured) (bool, error) {
	raw := es.GetAnnotations()[AnnotationWiring]
	if raw == "" {
		return false, nil
	}
	var rec wiringRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return false, fmt.Errorf("invalid annotation %s on Elasticsearch %s: %w", AnnotationWiring, es.GetName(), err)
	}
	if rec.ConfigMapName != "" && ConfigMapOf(es) == rec.ConfigMapName {
		unstructured.RemoveNestedField(es.Object, caPath...)
		for i := len(caPath) - 1; i >= 2; i-- {
			parent, found, _ := unstructured.NestedMap(es.Object, caPath[:i]...)
			if !found || len(parent) > 0 {
				break
			}
			unstructured.RemoveNestedField(es.Object, caPath[:i]...)
		}
	}
	ann := es.GetAnnotations()
	delete(ann, AnnotationWiring)
	if len(ann) == 0 {
		ann = nil
	}
	es.SetAnnotations(ann)
	return true, nil
}

// Snippet is, for manual wiring, the change to commit to the Elasticsearch resource.
func Snippet(es *unstructured.Unstructured) string {
	doc := map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1",
		"kind":       "Elasticsearch",
		"metadata":   map[string]any{"name": es.GetName(), "namespace": es.GetNamespace()},
		"spec": map[string]any{"transport": map[string]any{"tls": map[string]any{
			"certificateAuthorities": map[string]any{"configMapName": ConfigMapName(es.GetName())},
		}}},
	}
	data, _ := yaml.Marshal(doc)
	return "# ecklink: merge into Elasticsearch " + es.GetNamespace() + "/" + es.GetName() +
		" (certificate model: the peer's transport CA joins the transport trust)\n" + string(data)
}
