package cache

import (
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// SpecChanged reports whether an update of a custom resource (a RemoteCluster, a ClusterExport,
// an Elasticsearch) changed anything but its status. Handlers that read no status use it to drop
// status-only updates: the agent's own status writes, and ECK's, come back through the
// informers, and each used to cost a full reconcile. An add or a delete is a change.
func SpecChanged(old, new any) bool {
	o, ok1 := old.(metav1.Object)
	n, ok2 := new.(metav1.Object)
	if !ok1 || !ok2 {
		return true
	}
	return o.GetGeneration() != n.GetGeneration() ||
		!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
		!slices.Equal(o.GetFinalizers(), n.GetFinalizers()) ||
		!maps.Equal(o.GetLabels(), n.GetLabels()) ||
		!maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}

// Both is a Handler that calls f with the old and the new object of every change (nil for the
// one an add or a delete has not).
func Both(f func(any)) Handler { return func(old, new any) { f(old); f(new) } }

// SpecChanges is Both for the changes SpecChanged reports: for handlers that read no status, so
// that status writes (the halves', one per link and change; ECK's) cost them nothing.
func SpecChanges(f func(any)) Handler {
	return func(old, new any) {
		if SpecChanged(old, new) {
			f(old)
			f(new)
		}
	}
}

// Key is the namespace and name of an object the informers hand out (false for nil).
func Key(obj any) (types.NamespacedName, bool) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}, true
}

// ElasticsearchRef names the local Elasticsearch a RemoteCluster or a ClusterExport refers to
// (spec.elasticsearchRef), in the typed or the unstructured form the informers hand out.
func ElasticsearchRef(obj any) (types.NamespacedName, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *v1alpha1.RemoteCluster:
		return types.NamespacedName{Namespace: o.Namespace, Name: o.Spec.ElasticsearchRef.Name}, true
	case *v1alpha1.ClusterExport:
		return types.NamespacedName{Namespace: o.Namespace, Name: o.Spec.ElasticsearchRef.Name}, true
	case *unstructured.Unstructured:
		es, _, _ := unstructured.NestedString(o.Object, "spec", "elasticsearchRef", "name")
		return types.NamespacedName{Namespace: o.GetNamespace(), Name: es}, true
	}
	return types.NamespacedName{}, false
}
