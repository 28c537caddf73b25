package wiring

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Snippet renders, for manual mode, the change to commit to the Elasticsearch resource: the
// resource's spec with only the fields Apply would change, as YAML. It is empty when es is wired.
func Snippet(es *unstructured.Unstructured) (string, error) {
	wired := es.DeepCopy()
	changes, err := Apply(wired)
	if err != nil {
		return "", err
	}
	if len(changes) == 0 {
		return "", nil
	}
	spec := map[string]any{}
	if v, ok, _ := unstructured.NestedSlice(wired.Object, "spec", "secureSettings"); ok {
		spec["secureSettings"] = v
	}
	nodeSets, _, _ := unstructured.NestedSlice(wired.Object, "spec", "nodeSets")
	var out []any
	for _, raw := range nodeSets {
		ns, _ := raw.(map[string]any)
		entry := map[string]any{"name": ns["name"]}
		for _, k := range []string{"config", "podTemplate"} {
			if ns[k] != nil {
				entry[k] = ns[k]
			}
		}
		out = append(out, entry)
	}
	spec["nodeSets"] = out
	doc := map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1",
		"kind":       "Elasticsearch",
		"metadata":   map[string]any{"name": es.GetName(), "namespace": es.GetNamespace()},
		"spec":       spec,
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("failed to render wiring snippet: %w", err)
	}
	return "# ecklink: merge into Elasticsearch " + es.GetNamespace() + "/" + es.GetName() +
		" (secureSettings and nodeSets are atomic lists: keep your other entries)\n" + string(data), nil
}
