package wiring

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// EnableRemoteClusterServer sets spec.remoteClusterServer.enabled on an exported Elasticsearch
// (a Change; ECK then restarts the cluster to open port 9443).
func EnableRemoteClusterServer(es *unstructured.Unstructured) ([]string, error) {
	if on, _, _ := unstructured.NestedBool(es.Object, "spec", "remoteClusterServer", "enabled"); on {
		return nil, nil
	}
	if err := unstructured.SetNestedField(es.Object, true, "spec", "remoteClusterServer", "enabled"); err != nil {
		return nil, fmt.Errorf("failed to enable the remote cluster server of %s/%s: %w", es.GetNamespace(), es.GetName(), err)
	}
	return []string{"set spec.remoteClusterServer.enabled: true"}, nil
}
