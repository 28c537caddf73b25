package wiring

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Optional volumes for strong identity verification (Elasticsearch 9.3+). They are mounted as
// soon as strong identity could be used, optional so that the pods start before the object
// exists: turning strong identity on later only writes the object, and ECK does not restart.

// AnnotationVolumes lists the optional volumes managed mode added (JSON list of names), so
// removal takes only those.
const AnnotationVolumes = "ecklink.io/wiring-volumes"

// Volume is one optional ConfigMap or Secret volume, mounted read-only in ECK's Elasticsearch
// container of every node set.
type Volume struct {
	// Name of the pod volume, also the directory under ConfigDir.
	Name string
	// ConfigMap or Secret is the object mounted (exactly one).
	ConfigMap string
	Secret    string
}

// MountPath is where the volume appears in the pods.
func (v Volume) MountPath() string { return path.Join(ConfigDir, v.Name) }

// Signing volumes.
const (
	// SigningVolumeName holds a local Elasticsearch's signing certificate and key.
	SigningVolumeName = "ecklink-signing"
	// SigningCAVolumeName holds the signing CAs an exported Elasticsearch trusts.
	SigningCAVolumeName = "ecklink-signing-ca"
)

// SigningSecretName is the Secret with the signing certificate (tls.crt, tls.key) of a local
// Elasticsearch.
func SigningSecretName(es string) string { return es + "-ecklink-signing" }

// SigningCAConfigMapName is the ConfigMap with the signing CAs an exported Elasticsearch trusts.
func SigningCAConfigMapName(es string) string { return es + "-ecklink-signing-ca" }

// SigningVolume is the local Elasticsearch's signing Secret volume.
func SigningVolume(es string) Volume {
	return Volume{Name: SigningVolumeName, Secret: SigningSecretName(es)}
}

// SigningCAVolume is the exported Elasticsearch's signing CA ConfigMap volume.
func SigningCAVolume(es string) Volume {
	return Volume{Name: SigningCAVolumeName, ConfigMap: SigningCAConfigMapName(es)}
}

// Paths of the signing files in the pods.
var (
	SigningCertPath = path.Join(ConfigDir, SigningVolumeName, "tls.crt")
	SigningKeyPath  = path.Join(ConfigDir, SigningVolumeName, "tls.key")
	SigningCAPath   = path.Join(ConfigDir, SigningCAVolumeName, "ca.crt")
)

// HasVolume reports whether every node set of es mounts v (by the agent or the user).
func HasVolume(es *unstructured.Unstructured, v Volume) bool {
	return len(MissingVolume(es, v)) == 0
}

// MissingVolume describes what ApplyVolume would still change.
func MissingVolume(es *unstructured.Unstructured, v Volume) []string {
	changes, _ := ApplyVolume(es.DeepCopy(), v)
	return changes
}

// ApplyVolume adds v (optional) and its mount to every node set of es, in place, and returns a
// description of each change.
func ApplyVolume(es *unstructured.Unstructured, v Volume) ([]string, error) {
	nodeSets, found, err := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
	if err != nil || !found || len(nodeSets) == 0 {
		return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets must list at least one node set", es.GetName())
	}
	var changes []string
	for i, raw := range nodeSets {
		ns, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets[%d] is not an object", es.GetName(), i)
		}
		nsName, _ := ns["name"].(string)
		spec := podSpec(ns)
		volumes, _ := spec["volumes"].([]any)
		if indexByName(volumes, v.Name) < 0 {
			src := map[string]any{"optional": true}
			vol := map[string]any{"name": v.Name}
			if v.Secret != "" {
				src["secretName"] = v.Secret
				vol["secret"] = src
			} else {
				src["name"] = v.ConfigMap
				vol["configMap"] = src
			}
			spec["volumes"] = append(volumes, vol)
			changes = append(changes, fmt.Sprintf("nodeSet %s: add optional volume %s", nsName, v.Name))
		}
		container, _, err := esContainer(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets[%d]: %w", es.GetName(), i, err)
		}
		mounts, _ := container["volumeMounts"].([]any)
		if indexByName(mounts, v.Name) < 0 {
			container["volumeMounts"] = append(mounts, map[string]any{"name": v.Name, "mountPath": v.MountPath(), "readOnly": true})
			changes = append(changes, fmt.Sprintf("nodeSet %s: mount %s at %s", nsName, v.Name, v.MountPath()))
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	if err := unstructured.SetNestedSlice(es.Object, nodeSets, "spec", "nodeSets"); err != nil {
		return nil, fmt.Errorf("failed to set spec.nodeSets: %w", err)
	}
	names := volumesRecord(es)
	if !slices.Contains(names, v.Name) {
		names = append(names, v.Name)
	}
	return changes, writeVolumesRecord(es, names)
}

// Recorded reports whether ApplyVolume added v to es (RemoveVolume would take it out).
func Recorded(es *unstructured.Unstructured, v Volume) bool {
	return slices.Contains(volumesRecord(es), v.Name)
}

// RemoveVolume takes out v and its mounts if ApplyVolume added them.
func RemoveVolume(es *unstructured.Unstructured, v Volume) ([]string, error) {
	names := volumesRecord(es)
	if !slices.Contains(names, v.Name) {
		return nil, nil
	}
	var changes []string
	nodeSets, _, _ := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
	for _, raw := range nodeSets {
		ns, _ := raw.(map[string]any)
		spec, _, _ := unstructured.NestedMap(ns, "podTemplate", "spec")
		if spec == nil {
			continue
		}
		if vols, _ := spec["volumes"].([]any); indexByName(vols, v.Name) >= 0 {
			spec["volumes"] = slices.Delete(vols, indexByName(vols, v.Name), indexByName(vols, v.Name)+1)
			changes = append(changes, "remove volume "+v.Name)
		}
		containers, _ := spec["containers"].([]any)
		if idx := indexByName(containers, ContainerName); idx >= 0 {
			c, _ := containers[idx].(map[string]any)
			if mounts, _ := c["volumeMounts"].([]any); indexByName(mounts, v.Name) >= 0 {
				c["volumeMounts"] = slices.Delete(mounts, indexByName(mounts, v.Name), indexByName(mounts, v.Name)+1)
			}
		}
		if err := unstructured.SetNestedMap(ns, spec, "podTemplate", "spec"); err != nil {
			return nil, fmt.Errorf("failed to set podTemplate.spec: %w", err)
		}
	}
	if err := unstructured.SetNestedSlice(es.Object, nodeSets, "spec", "nodeSets"); err != nil {
		return nil, fmt.Errorf("failed to set spec.nodeSets: %w", err)
	}
	return changes, writeVolumesRecord(es, slices.DeleteFunc(names, func(n string) bool { return n == v.Name }))
}

func volumesRecord(es *unstructured.Unstructured) []string {
	var names []string
	if raw := es.GetAnnotations()[AnnotationVolumes]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &names)
	}
	return names
}

func writeVolumesRecord(es *unstructured.Unstructured, names []string) error {
	return writeAnnotation(es, AnnotationVolumes, names, len(names) == 0, AnnotationVolumes)
}
