package wiring

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// record is what managed mode added, stored in AnnotationWiring.
type record struct {
	SecureSettings bool                     `json:"secureSettings,omitempty"`
	NodeSets       map[string]nodeSetRecord `json:"nodeSets,omitempty"`
}

type nodeSetRecord struct {
	SSLEnabled     bool `json:"sslEnabled,omitempty"`
	SSLEnabledPrev any  `json:"sslEnabledPrev,omitempty"`
	CAListCreated  bool `json:"caListCreated,omitempty"`
	CAEntryAdded   bool `json:"caEntryAdded,omitempty"`
	CAPrev         any  `json:"caPrev,omitempty"`
	Volume         bool `json:"volume,omitempty"`
	Container      bool `json:"container,omitempty"`
	Mount          bool `json:"mount,omitempty"`
}

// Apply adds ecklink's entries to the Elasticsearch resource es (in place) and returns a
// description of each change; none means it was already wired. Entries the user made
// equivalently (e.g. ssl.enabled already true) are left as they are and not recorded.
func Apply(es *unstructured.Unstructured) ([]string, error) {
	rec, err := readRecord(es)
	if err != nil {
		return nil, err
	}
	var changes []string
	name := es.GetName()

	secure, _, _ := unstructured.NestedSlice(es.Object, "spec", "secureSettings")
	if !hasSecretName(secure, CredentialsSecretName(name)) {
		secure = append(secure, map[string]any{"secretName": CredentialsSecretName(name)})
		if err := unstructured.SetNestedSlice(es.Object, secure, "spec", "secureSettings"); err != nil {
			return nil, fmt.Errorf("failed to set spec.secureSettings: %w", err)
		}
		rec.SecureSettings = true
		changes = append(changes, "add spec.secureSettings entry "+CredentialsSecretName(name))
	}

	nodeSets, found, err := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
	if err != nil || !found || len(nodeSets) == 0 {
		return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets must list at least one node set", name)
	}
	for i, raw := range nodeSets {
		ns, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets[%d] is not an object", name, i)
		}
		nsName, _ := ns["name"].(string)
		r := rec.NodeSets[nsName]
		c, err := applyNodeSet(name, ns, &r)
		if err != nil {
			return nil, fmt.Errorf("invalid Elasticsearch %s: spec.nodeSets[%d] (%s): %w", name, i, nsName, err)
		}
		for _, ch := range c {
			changes = append(changes, fmt.Sprintf("nodeSet %s: %s", nsName, ch))
		}
		if r != (nodeSetRecord{}) || rec.NodeSets[nsName] != (nodeSetRecord{}) {
			if rec.NodeSets == nil {
				rec.NodeSets = map[string]nodeSetRecord{}
			}
			rec.NodeSets[nsName] = r
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	if err := unstructured.SetNestedSlice(es.Object, nodeSets, "spec", "nodeSets"); err != nil {
		return nil, fmt.Errorf("failed to set spec.nodeSets: %w", err)
	}
	return changes, writeRecord(es, rec)
}

func applyNodeSet(esName string, ns map[string]any, r *nodeSetRecord) ([]string, error) {
	var changes []string
	cfg, _ := ns["config"].(map[string]any)
	if cfg == nil {
		if ns["config"] != nil {
			return nil, fmt.Errorf("config must be an object")
		}
		cfg = map[string]any{}
		ns["config"] = cfg
	}
	if loc := lookup(cfg, keySSLEnabled); !loc.valid() {
		cfg[keySSLEnabled] = true
		r.SSLEnabled = true
		changes = append(changes, "set "+keySSLEnabled+": true")
	} else if !isTrue(loc.get()) {
		r.SSLEnabledPrev = loc.get()
		loc.set(true)
		r.SSLEnabled = true
		changes = append(changes, "set "+keySSLEnabled+": true (was false)")
	}
	if loc := lookup(cfg, keySSLCAs); !loc.valid() {
		cfg[keySSLCAs] = toAnyList(append(append([]string{}, ECKClientCAs...), CAFilePath))
		r.CAListCreated = true
		changes = append(changes, "set "+keySSLCAs+" to ECK's entries and "+CAFilePath)
	} else {
		list, ok := stringList(loc.get())
		if !ok {
			return nil, fmt.Errorf("config %s must be a list of paths", keySSLCAs)
		}
		if !slices.Contains(list, CAFilePath) && !slices.Contains(list, CAVolumeName+"/"+CAFileKey) {
			r.CAPrev = loc.get()
			loc.set(toAnyList(append(list, CAFilePath)))
			r.CAEntryAdded = true
			changes = append(changes, "add "+CAFilePath+" to "+keySSLCAs)
		}
	}
	c, err := applyPodTemplate(esName, ns, r)
	if err != nil {
		return nil, err
	}
	return append(changes, c...), nil
}

func applyPodTemplate(esName string, ns map[string]any, r *nodeSetRecord) ([]string, error) {
	var changes []string
	spec := podSpec(ns)
	volumes, _ := spec["volumes"].([]any)
	if indexByName(volumes, CAVolumeName) < 0 {
		spec["volumes"] = append(volumes, map[string]any{
			"name":      CAVolumeName,
			"configMap": map[string]any{"name": CAConfigMapName(esName)},
		})
		r.Volume = true
		changes = append(changes, "add volume "+CAVolumeName)
	}
	container, created, err := esContainer(spec)
	if err != nil {
		return nil, err
	}
	if created {
		r.Container = true
	}
	mounts, _ := container["volumeMounts"].([]any)
	if indexByName(mounts, CAVolumeName) < 0 {
		container["volumeMounts"] = append(mounts, map[string]any{
			"name": CAVolumeName, "mountPath": CAMountPath, "readOnly": true,
		})
		r.Mount = true
		changes = append(changes, "mount "+CAVolumeName+" at "+CAMountPath)
	}
	return changes, nil
}

// podSpec returns a node set's podTemplate.spec, creating the levels that are missing.
func podSpec(ns map[string]any) map[string]any {
	pt, _ := ns["podTemplate"].(map[string]any)
	if pt == nil {
		pt = map[string]any{}
		ns["podTemplate"] = pt
	}
	spec, _ := pt["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		pt["spec"] = spec
	}
	return spec
}

// esContainer returns the elasticsearch container of a pod spec, adding an entry for it when
// there is none (created).
func esContainer(spec map[string]any) (container map[string]any, created bool, err error) {
	containers, _ := spec["containers"].([]any)
	idx := indexByName(containers, ContainerName)
	if idx < 0 {
		containers = append(containers, map[string]any{"name": ContainerName})
		idx, created = len(containers)-1, true
	}
	container, ok := containers[idx].(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("podTemplate container %s must be an object", ContainerName)
	}
	spec["containers"] = containers
	return container, created, nil
}

// Missing describes what Apply would still change: empty when es is wired (by the agent or by
// the user committing the snippet).
func Missing(es *unstructured.Unstructured) ([]string, error) {
	return Apply(es.DeepCopy())
}

func indexByName(list []any, name string) int {
	for i, item := range list {
		if m, ok := item.(map[string]any); ok && m["name"] == name {
			return i
		}
	}
	return -1
}

func readRecord(es *unstructured.Unstructured) (record, error) {
	var rec record
	err := readAnnotation(es, AnnotationWiring, &rec)
	return rec, err
}

func writeRecord(es *unstructured.Unstructured, rec record) error {
	return writeAnnotation(es, AnnotationWiring, rec, !rec.SecureSettings && len(rec.NodeSets) == 0, "wiring record")
}
