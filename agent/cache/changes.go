package cache

import (
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// SpecChanged reports whether an update of a custom resource (a RemoteCluster, a ClusterExport,
// an Elasticsearch) changed anything but its status. Handlers that read no status use it to drop
// status-only updates: the agent's own status writes, and ECK's, come back through the
// informers, and each used to cost a full reconcile. An add or a delete is a change.
func SpecChanged(old, new any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	n, ok2 := new.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	return o.GetGeneration() != n.GetGeneration() ||
		!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
		!slices.Equal(o.GetFinalizers(), n.GetFinalizers()) ||
		!maps.Equal(o.GetLabels(), n.GetLabels()) ||
		!maps.Equal(o.GetAnnotations(), n.GetAnnotations())
}
