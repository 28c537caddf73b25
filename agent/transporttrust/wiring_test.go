package transporttrust

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestWireKeepsTheUsersTransportSettings(t *testing.T) {
	es := elasticsearch("logs", "")
	_ = unstructured.SetNestedField(es.Object, "LoadBalancer", "spec", "transport", "service", "spec", "type")
	if changed, err := Wire(es); err != nil || !changed {
		t.Fatalf("Wire: changed=%v err=%v", changed, err)
	}
	if changed, _ := Wire(es); changed {
		t.Error("second Wire changed the resource")
	}
	if changed, err := Unwire(es); err != nil || !changed {
		t.Fatalf("Unwire: changed=%v err=%v", changed, err)
	}
	if typ, _, _ := unstructured.NestedString(es.Object, "spec", "transport", "service", "spec", "type"); typ != "LoadBalancer" {
		t.Error("Unwire removed the user's transport service settings")
	}
	if _, found, _ := unstructured.NestedMap(es.Object, "spec", "transport", "tls"); found {
		t.Error("Unwire left an empty spec.transport.tls")
	}
	if es.GetAnnotations() != nil {
		t.Errorf("annotations = %v", es.GetAnnotations())
	}
}

func TestWireNeverReplacesTheUsersConfigMap(t *testing.T) {
	es := elasticsearch("logs", "user-cas")
	if _, err := Wire(es); err == nil {
		t.Error("Wire replaced the user's ConfigMap")
	}
	// A record whose ConfigMap the user since replaced only loses the record.
	es.SetAnnotations(map[string]string{AnnotationWiring: `{"configMapName":"logs-ecklink-transport-ca"}`})
	if _, err := Unwire(es); err != nil {
		t.Fatal(err)
	}
	if ConfigMapOf(es) != "user-cas" {
		t.Errorf("Unwire changed the user's ConfigMap name to %q", ConfigMapOf(es))
	}
}
