package wiring

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Part is something more a snippet wires: a Volume or the agent's user (Auth).
type Part interface {
	applyTo(es *unstructured.Unstructured) ([]string, error)
}

func (v Volume) applyTo(es *unstructured.Unstructured) ([]string, error) { return ApplyVolume(es, v) }
func (a Auth) applyTo(es *unstructured.Unstructured) ([]string, error)   { return ApplyAuth(es, a) }

// Snippet renders, for manual mode, the change to commit to the Elasticsearch resource as YAML:
// spec.secureSettings and spec.nodeSets complete, as they must be after wiring (ECK's CRD makes
// both atomic lists, so a merge patch or an apply replaces them whole: partial entries would drop
// the user's other fields). Extra parts are wired too: volumes (the signing certificate's, when
// strong identity waits for it) and the agent's user (spec.auth.fileRealm and spec.auth.roles,
// also complete lists). It is empty when es is wired and has every part.
func Snippet(es *unstructured.Unstructured, extra ...Part) (string, error) {
	wired := es.DeepCopy()
	changes, err := Apply(wired)
	if err != nil {
		return "", err
	}
	withAuth := false
	for _, p := range extra {
		more, err := p.applyTo(wired)
		if err != nil {
			return "", err
		}
		changes = append(changes, more...)
		if _, ok := p.(Auth); ok {
			withAuth = true
		}
	}
	if len(changes) == 0 {
		return "", nil
	}
	spec := map[string]any{}
	if v, ok, _ := unstructured.NestedSlice(wired.Object, "spec", "secureSettings"); ok {
		spec["secureSettings"] = v
	}
	if auth, ok, _ := unstructured.NestedMap(wired.Object, "spec", "auth"); ok && withAuth {
		spec["auth"] = auth
	}
	nodeSets, _, _ := unstructured.NestedSlice(wired.Object, "spec", "nodeSets")
	spec["nodeSets"] = nodeSets
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
	header := fmt.Sprintf("# ecklink wiring for Elasticsearch %s/%s: commit it to your manifest, or\n"+
		"#   kubectl patch elasticsearch %s -n %s --type merge --patch-file <this file>\n"+
		"# secureSettings, nodeSets and the auth lists are complete (ECK makes them atomic: they replace yours whole).\n",
		es.GetNamespace(), es.GetName(), es.GetName(), es.GetNamespace())
	return header + string(data), nil
}

// TransportCASnippet renders, for manual mode, the certificate model's change to commit to the
// Elasticsearch resource: spec.transport.tls.certificateAuthorities naming ecklink's ConfigMap
// (a plain object, so a merge patch keeps the user's other transport settings).
func TransportCASnippet(es *unstructured.Unstructured) string {
	doc := map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1",
		"kind":       "Elasticsearch",
		"metadata":   map[string]any{"name": es.GetName(), "namespace": es.GetNamespace()},
		"spec": map[string]any{"transport": map[string]any{"tls": map[string]any{
			"certificateAuthorities": map[string]any{"configMapName": TransportCAConfigMapName(es.GetName())},
		}}},
	}
	data, _ := yaml.Marshal(doc)
	return "# ecklink: merge into Elasticsearch " + es.GetNamespace() + "/" + es.GetName() +
		" (certificate model: the peer's transport CA joins the transport trust)\n" + string(data)
}
