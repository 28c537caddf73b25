package pod

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FileBasedSecureSettingsAnnotation opts an Elasticsearch into ECK 3.5's file-based secure
// settings, which ES >= 9.5 reloads without a restart.
const FileBasedSecureSettingsAnnotation = "eck.k8s.elastic.co/file-based-secure-settings"

// podSpec is what a running pod was started with: the parts of the Elasticsearch resource that
// ECK turns into the pod template. A change to it means a rolling restart.
type podSpec struct {
	Version             string
	NodeSet             string
	Config              Settings
	Mounts              []mount
	RemoteClusterServer bool
	FileBasedSecure     bool
	Hash                string
}

// buildSpec derives the pod of the first node set from the Elasticsearch resource, as ECK would.
func buildSpec(es *unstructured.Unstructured) (podSpec, error) {
	version, _, _ := unstructured.NestedString(es.Object, "spec", "version")
	rcs, _, _ := unstructured.NestedBool(es.Object, "spec", "remoteClusterServer", "enabled")
	nodeSets, _, _ := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
	if len(nodeSets) == 0 {
		return podSpec{}, fmt.Errorf("spec.nodeSets is empty")
	}
	ns0, ok := nodeSets[0].(map[string]any)
	if !ok {
		return podSpec{}, fmt.Errorf("spec.nodeSets[0] is not an object")
	}
	name, _ := ns0["name"].(string)
	user, _ := ns0["config"].(map[string]any)
	// ECK enables the remote cluster client config only for its own API-key remotes.
	remotes, _, _ := unstructured.NestedSlice(es.Object, "spec", "remoteClusters")
	eckClient := false
	for _, r := range remotes {
		if m, ok := r.(map[string]any); ok && m["apiKey"] != nil {
			eckClient = true
		}
	}
	cfg, err := mergeUserConfig(eckDefaults(rcs, eckClient), user)
	if err != nil {
		return podSpec{}, fmt.Errorf("invalid config of node set %s: %w", name, err)
	}
	mounts := eckMounts(es.GetName(), name)
	userMounts, err := podTemplateMounts(ns0)
	if err != nil {
		return podSpec{}, err
	}
	mounts = append(mounts, userMounts...)
	s := podSpec{
		Version:             version,
		NodeSet:             name,
		Config:              cfg,
		Mounts:              mounts,
		RemoteClusterServer: rcs,
		FileBasedSecure:     es.GetAnnotations()[FileBasedSecureSettingsAnnotation] == "true",
	}
	raw, _ := json.Marshal(struct {
		V string
		C Settings
		M []mount
		R bool
		F bool
	}{s.Version, s.Config, s.Mounts, s.RemoteClusterServer, s.FileBasedSecure})
	sum := sha256.Sum256(raw)
	s.Hash = hex.EncodeToString(sum[:])
	return s, nil
}

// podTemplateMounts returns the ConfigMap and Secret volumes the user mounts into the
// elasticsearch container through the node set's podTemplate.
func podTemplateMounts(nodeSet map[string]any) ([]mount, error) {
	volumes, _, _ := unstructured.NestedSlice(nodeSet, "podTemplate", "spec", "volumes")
	containers, _, _ := unstructured.NestedSlice(nodeSet, "podTemplate", "spec", "containers")
	sources := map[string]mount{}
	for _, v := range volumes {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		var m mount
		switch {
		case vm["configMap"] != nil:
			src, _ := vm["configMap"].(map[string]any)
			m.Kind = "configMap"
			m.Name, _ = src["name"].(string)
			m.Items = items(src)
		case vm["secret"] != nil:
			src, _ := vm["secret"].(map[string]any)
			m.Kind = "secret"
			m.Name, _ = src["secretName"].(string)
			m.Items = items(src)
		default:
			continue
		}
		sources[name] = m
	}
	var out []mount
	for _, c := range containers {
		cm, _ := c.(map[string]any)
		if cm["name"] != "elasticsearch" {
			continue
		}
		vms, _ := cm["volumeMounts"].([]any)
		for _, vmRaw := range vms {
			vm, _ := vmRaw.(map[string]any)
			name, _ := vm["name"].(string)
			mountPath, _ := vm["mountPath"].(string)
			src, ok := sources[name]
			if !ok {
				continue
			}
			src.Path = path.Clean(mountPath)
			out = append(out, src)
		}
	}
	return out, nil
}

func items(src map[string]any) map[string]string {
	list, _ := src["items"].([]any)
	if len(list) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, it := range list {
		m, _ := it.(map[string]any)
		k, _ := m["key"].(string)
		p, _ := m["path"].(string)
		out[p] = k
	}
	return out
}
