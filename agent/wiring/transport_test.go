package wiring

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestWireTransportCAKeepsTheUsersTransportSettings(t *testing.T) {
	e := es(t, "  nodeSets:\n  - name: default\n  transport:\n    service:\n      spec:\n        type: LoadBalancer\n")
	if changes, err := WireTransportCA(e); err != nil || len(changes) == 0 {
		t.Fatalf("WireTransportCA: changes=%v err=%v", changes, err)
	}
	if changes, _ := WireTransportCA(e); len(changes) > 0 {
		t.Errorf("second WireTransportCA changed the resource: %v", changes)
	}
	if changes, err := UnwireTransportCA(e); err != nil || len(changes) == 0 {
		t.Fatalf("UnwireTransportCA: changes=%v err=%v", changes, err)
	}
	if typ, _, _ := unstructured.NestedString(e.Object, "spec", "transport", "service", "spec", "type"); typ != "LoadBalancer" {
		t.Error("UnwireTransportCA removed the user's transport service settings")
	}
	if _, found, _ := unstructured.NestedMap(e.Object, "spec", "transport", "tls"); found {
		t.Error("UnwireTransportCA left an empty spec.transport.tls")
	}
	if e.GetAnnotations() != nil {
		t.Errorf("annotations = %v", e.GetAnnotations())
	}
}

func TestWireTransportCANeverReplacesTheUsersConfigMap(t *testing.T) {
	e := es(t, "  nodeSets:\n  - name: default\n  transport:\n    tls:\n      certificateAuthorities:\n        configMapName: user-cas\n")
	if _, err := WireTransportCA(e); err == nil {
		t.Error("WireTransportCA replaced the user's ConfigMap")
	}
	// A record whose ConfigMap the user since replaced only loses the record.
	e.SetAnnotations(map[string]string{AnnotationTransportCA: `{"configMapName":"ccs-ecklink-transport-ca"}`})
	if _, err := UnwireTransportCA(e); err != nil {
		t.Fatal(err)
	}
	if TransportCAConfigMapOf(e) != "user-cas" {
		t.Errorf("UnwireTransportCA changed the user's ConfigMap name to %q", TransportCAConfigMapOf(e))
	}
	if TransportCAWiredByUs(e) {
		t.Error("the record stayed")
	}
}
