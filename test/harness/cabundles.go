package harness

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/wiring"
)

// AliasCABundle is the CA bundle an alias uses in an importer's CA ConfigMap, "" when the
// ConfigMap holds none for it. Tests ask this rather than read keys: the layout (one entry per
// distinct bundle, indexed by an annotation) is the agent's.
func AliasCABundle(cm *corev1.ConfigMap, alias string) string {
	if cm == nil {
		return ""
	}
	return wiring.AliasCABundles(cm.Data, cm.Annotations)[alias]
}

// CABundleKeys are the keys of an importer's CA ConfigMap that hold PEM bundles: ca.crt, the
// file Elasticsearch reads, and the entry of every alias, sorted.
func CABundleKeys(cm *corev1.ConfigMap) []string {
	keys := map[string]bool{}
	if _, ok := cm.Data[wiring.CAFileKey]; ok {
		keys[wiring.CAFileKey] = true
	}
	for _, k := range wiring.CAEntries(cm.Data, cm.Annotations) {
		if _, ok := cm.Data[k]; ok {
			keys[k] = true
		}
	}
	return slices.Sorted(maps.Keys(keys))
}
