package testenv

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// AuthSecretNames are the secretName entries of spec.auth.<field> (fileRealm, roles) of the
// Elasticsearch resource es, in order; nil when there are none.
func AuthSecretNames(es *unstructured.Unstructured, field string) []string {
	list, _, _ := unstructured.NestedSlice(es.Object, "spec", "auth", field)
	var out []string
	for _, item := range list {
		out = append(out, item.(map[string]any)["secretName"].(string))
	}
	return out
}
