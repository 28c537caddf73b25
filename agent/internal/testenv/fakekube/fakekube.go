// Package fakekube builds the fake Kubernetes clients the agent's tests run against. Only _test.go
// files import it; the agent itself never does.
package fakekube

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/kube"
)

// NewDynamic is a fake dynamic client that lists the agent's resources (kube.ListKinds) and ECK's
// Elasticsearch. It holds objs, typed objects of the agent's kinds, as unstructured, and each of
// es, created through the Elasticsearch resource in its own namespace: from the kind alone the
// fake would guess the resource "elasticsearchs".
func NewDynamic(objs []runtime.Object, es ...*unstructured.Unstructured) (*dynamicfake.FakeDynamicClient, error) {
	var uobjs []runtime.Object
	for _, o := range objs {
		u, err := kube.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		uobjs = append(uobjs, u)
	}
	kinds := map[schema.GroupVersionResource]string{eck.ElasticsearchGVR: "ElasticsearchList"}
	for k, v := range kube.ListKinds {
		kinds[k] = v
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, uobjs...)
	for _, e := range es {
		if _, err := dyn.Resource(eck.ElasticsearchGVR).Namespace(e.GetNamespace()).Create(context.Background(), e, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	return dyn, nil
}

// Dynamic is NewDynamic failing tb on an error.
func Dynamic(tb testing.TB, objs []runtime.Object, es ...*unstructured.Unstructured) *dynamicfake.FakeDynamicClient {
	tb.Helper()
	dyn, err := NewDynamic(objs, es...)
	if err != nil {
		tb.Fatal(err)
	}
	return dyn
}
