package wiring

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Remove takes out exactly what Apply recorded in the annotation, and returns a description of
// each change. The user's own entries, and entries the user made before the agent, stay.
func Remove(es *unstructured.Unstructured) ([]string, error) {
	rec, err := readRecord(es)
	if err != nil {
		return nil, err
	}
	var changes []string
	name := es.GetName()
	if rec.SecureSettings {
		secure, _, _ := unstructured.NestedSlice(es.Object, "spec", "secureSettings")
		kept := secure[:0]
		for _, item := range secure {
			if m, ok := item.(map[string]any); ok && m["secretName"] == CredentialsSecretName(name) {
				changes = append(changes, "remove spec.secureSettings entry "+CredentialsSecretName(name))
				continue
			}
			kept = append(kept, item)
		}
		if len(kept) == 0 {
			unstructured.RemoveNestedField(es.Object, "spec", "secureSettings")
		} else if err := unstructured.SetNestedSlice(es.Object, kept, "spec", "secureSettings"); err != nil {
			return nil, fmt.Errorf("failed to set spec.secureSettings: %w", err)
		}
	}
	nodeSets, _, _ := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
	for _, raw := range nodeSets {
		ns, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		nsName, _ := ns["name"].(string)
		r, ok := rec.NodeSets[nsName]
		if !ok {
			continue
		}
		for _, ch := range removeNodeSet(ns, r) {
			changes = append(changes, fmt.Sprintf("nodeSet %s: %s", nsName, ch))
		}
	}
	if len(nodeSets) > 0 {
		if err := unstructured.SetNestedSlice(es.Object, nodeSets, "spec", "nodeSets"); err != nil {
			return nil, fmt.Errorf("failed to set spec.nodeSets: %w", err)
		}
	}
	if err := writeRecord(es, record{}); err != nil {
		return nil, err
	}
	return changes, nil
}

func removeNodeSet(ns map[string]any, r nodeSetRecord) []string {
	var changes []string
	cfg, _ := ns["config"].(map[string]any)
	if cfg != nil {
		if r.SSLEnabled {
			if loc := lookup(cfg, keySSLEnabled); loc.valid() {
				if r.SSLEnabledPrev != nil {
					loc.set(r.SSLEnabledPrev)
				} else {
					loc.delete()
				}
				changes = append(changes, "restore "+keySSLEnabled)
			}
		}
		if loc := lookup(cfg, keySSLCAs); loc.valid() && (r.CAListCreated || r.CAEntryAdded) {
			list, _ := stringList(loc.get())
			kept := make([]string, 0, len(list))
			for _, p := range list {
				if p != CAFilePath {
					kept = append(kept, p)
				}
			}
			prev, _ := stringList(r.CAPrev)
			switch {
			case r.CAListCreated && slices.Equal(kept, ECKClientCAs):
				loc.delete()
			case r.CAEntryAdded && r.CAPrev != nil && slices.Equal(kept, prev):
				loc.set(r.CAPrev)
			default:
				loc.set(toAnyList(kept))
			}
			changes = append(changes, "remove "+CAFilePath+" from "+keySSLCAs)
		}
		pruneEmpty(cfg)
		if len(cfg) == 0 {
			delete(ns, "config")
		}
	}
	pt, _ := ns["podTemplate"].(map[string]any)
	spec, _ := pt["spec"].(map[string]any)
	if spec == nil {
		return changes
	}
	if r.Volume {
		volumes, _ := spec["volumes"].([]any)
		if i := indexByName(volumes, CAVolumeName); i >= 0 {
			spec["volumes"] = append(volumes[:i:i], volumes[i+1:]...)
			changes = append(changes, "remove volume "+CAVolumeName)
		}
	}
	containers, _ := spec["containers"].([]any)
	if i := indexByName(containers, ContainerName); i >= 0 {
		c, _ := containers[i].(map[string]any)
		if r.Mount {
			mounts, _ := c["volumeMounts"].([]any)
			if j := indexByName(mounts, CAVolumeName); j >= 0 {
				c["volumeMounts"] = append(mounts[:j:j], mounts[j+1:]...)
				changes = append(changes, "unmount "+CAVolumeName)
			}
		}
		if r.Container && len(c) == 1 || (r.Container && len(c) == 2 && isEmptyList(c["volumeMounts"])) {
			containers = append(containers[:i:i], containers[i+1:]...)
			spec["containers"] = containers
		}
	}
	pruneEmpty(pt)
	if len(pt) == 0 {
		delete(ns, "podTemplate")
	}
	return changes
}

// pruneEmpty removes maps and lists left empty by a removal, so the user's spec returns to the
// shape it had before the agent wired it.
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		switch t := v.(type) {
		case map[string]any:
			pruneEmpty(t)
			if len(t) == 0 {
				delete(m, k)
			}
		case []any:
			if len(t) == 0 {
				delete(m, k)
			}
		}
	}
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return v == nil || (ok && len(l) == 0)
}
