package pod

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// mount is one volume mounted into the elasticsearch container.
type mount struct {
	Path string
	// Kind is "configMap" or "secret".
	Kind string
	Name string
	// Items maps a file name to the object key, when the volume lists items.
	Items map[string]string
}

// eckMounts are the volumes ECK mounts into every Elasticsearch pod of node set nodeSet
// (read from the StatefulSet ECK 3.5.0 creates in the test bed).
func eckMounts(es, nodeSet string) []mount {
	return []mount{
		{Path: path.Join(configDir, "http-certs"), Kind: "secret", Name: es + "-es-http-certs-internal"},
		{Path: path.Join(configDir, "transport-certs"), Kind: "secret", Name: es + "-es-" + nodeSet + "-es-transport-certs"},
		{Path: path.Join(configDir, "transport-remote-certs"), Kind: "secret", Name: es + "-es-remote-ca"},
	}
}

// objectKey names a Kubernetes object in the delayed view.
func objectKey(kind, name string) string { return kind + "/" + name }

// version is one observed state of a ConfigMap or Secret.
type version struct {
	at      time.Time
	data    map[string][]byte
	deleted bool
}

// volumeView models what the kubelet shows a pod of mounted ConfigMaps and Secrets: an object as
// it was at the kubelet's last sync of the pod (kubelet.go), while objects present when the pod
// started are visible at once.
type volumeView struct {
	mu      sync.Mutex
	kubelet *kubeletState
	hist    map[string][]version
}

func newVolumeView(k *kubeletState) *volumeView {
	return &volumeView{kubelet: k, hist: map[string][]version{}}
}

// record stores a new state of an object seen at time at.
func (v *volumeView) record(key string, at time.Time, data map[string][]byte, deleted bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.hist[key] = append(v.hist[key], version{at: at, data: data, deleted: deleted})
}

// visible returns the object's data as the pod sees it (now is kept for callers that read
// files at a given moment; the kubelet's last sync decides).
func (v *volumeView) visible(key string, _ time.Time) (map[string][]byte, bool) {
	horizon := v.kubelet.horizon()
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.hist[key]
	idx := -1
	for i := range h {
		if !h[i].at.After(horizon) {
			idx = i
		}
	}
	if idx < 0 {
		return nil, false
	}
	if idx > 0 {
		// Older states can no longer become visible.
		v.hist[key] = h[idx:]
	}
	cur := h[idx]
	return cur.data, !cur.deleted
}

// files resolves paths in the pod's filesystem through the mounts.
type files struct {
	view   *volumeView
	mounts []mount
	now    time.Time
}

// read returns a file's content, or an error naming the missing file as ES would.
func (f files) read(p string) ([]byte, error) {
	p = resolvePath(p)
	var best *mount
	for i := range f.mounts {
		m := &f.mounts[i]
		if strings.HasPrefix(p, m.Path+"/") && (best == nil || len(m.Path) > len(best.Path)) {
			best = m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("failed to read file [%s]: no such file", p)
	}
	rel := strings.TrimPrefix(p, best.Path+"/")
	key := rel
	if best.Items != nil {
		k, ok := best.Items[rel]
		if !ok {
			return nil, fmt.Errorf("failed to read file [%s]: no such file", p)
		}
		key = k
	}
	data, ok := f.view.visible(objectKey(best.Kind, best.Name), f.now)
	if !ok || data[key] == nil {
		return nil, fmt.Errorf("failed to read file [%s]: no such file", p)
	}
	return data[key], nil
}

// hashData is a stable digest of an object's data.
func hashData(data map[string][]byte) string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
