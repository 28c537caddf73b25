package importer

import (
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The importer's own writes come back to it through the informers. Handling each as a change
// re-ran the whole per-Elasticsearch reconcile (its own status writes and ConfigMap/Secret writes
// each cost another pass with live reads and Elasticsearch calls): under a CA rotation that was
// more than three full reconciles per update, and the requests they made spent the client's QPS
// budget, so the CA write itself waited in client-go's rate limiter. So the handlers drop the
// echoes of the agent's own writes and the status-only updates of RemoteClusters (which only the
// agent writes), and the reconcile reads its own objects from the informer cache, with the
// object it wrote last standing in while the cache has not caught up with that write.
//
// An echo is recognised by its resourceVersion, and also by its content: the watch event of a
// write can arrive before the write's own response (and so before note), and a later write of
// the same object can be noted before the event of an earlier one arrives (CA updates in quick
// succession). Matching the resourceVersion alone took those echoes for someone else's change,
// and each cost a full reconcile (its Elasticsearch calls, its status writes) during a CA
// rotation.

// ownWrites remembers, per object the importer wrote, the object the API server returned and
// the resourceVersion it replaced, and the objects being written.
type ownWrites struct {
	mu sync.Mutex
	m  map[string]ownWrite
	// inflight are the objects being written, per object, as sent.
	inflight map[string][]metav1.Object
}

type ownWrite struct {
	obj    metav1.Object // as stored by our write
	prevRV string        // resourceVersion our write replaced ("" for a create)
	// recent are the resourceVersions of the latest writes, this one included.
	recent []string
}

// recentWrites bounds the resourceVersions remembered per object: more than the writes that
// can be in flight between a write and its watch event.
const recentWrites = 16

func writeKey(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

// note records an object the importer just stored over prevRV.
func (w *ownWrites) note(kind string, obj metav1.Object, prevRV string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]ownWrite{}
	}
	k := writeKey(kind, obj.GetNamespace(), obj.GetName())
	recent := append(w.m[k].recent, obj.GetResourceVersion())
	if len(recent) > recentWrites {
		recent = recent[len(recent)-recentWrites:]
	}
	w.m[k] = ownWrite{obj: obj, prevRV: prevRV, recent: recent}
}

// begin records an object about to be written; done must follow, whatever the outcome.
func (w *ownWrites) begin(kind string, obj metav1.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight == nil {
		w.inflight = map[string][]metav1.Object{}
	}
	k := writeKey(kind, obj.GetNamespace(), obj.GetName())
	w.inflight[k] = append(w.inflight[k], obj)
}

// done ends a write begun with begin.
func (w *ownWrites) done(kind string, obj metav1.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := writeKey(kind, obj.GetNamespace(), obj.GetName())
	list := w.inflight[k]
	for i, o := range list {
		if o == obj {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.inflight, k)
	} else {
		w.inflight[k] = list
	}
}

// forget drops what was recorded of an object (deleted).
func (w *ownWrites) forget(kind, ns, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, writeKey(kind, ns, name))
}

// echo reports whether obj is the state one of the importer's writes produced: one of the
// latest noted (same resourceVersion), the last one noted or one in flight (same content).
func (w *ownWrites) echo(kind string, obj metav1.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := writeKey(kind, obj.GetNamespace(), obj.GetName())
	if last, ok := w.m[k]; ok && (slices.Contains(last.recent, obj.GetResourceVersion()) || sameContent(last.obj, obj)) {
		return true
	}
	for _, o := range w.inflight[k] {
		if sameContent(o, obj) {
			return true
		}
	}
	return false
}

// sameContent reports whether two versions of one of the agent's objects hold the same data,
// labels and annotations.
func sameContent(a, b metav1.Object) bool {
	if !maps.Equal(a.GetLabels(), b.GetLabels()) || !maps.Equal(a.GetAnnotations(), b.GetAnnotations()) {
		return false
	}
	bytesEqual := func(x, y []byte) bool { return string(x) == string(y) }
	switch x := a.(type) {
	case *corev1.ConfigMap:
		y, ok := b.(*corev1.ConfigMap)
		return ok && maps.Equal(x.Data, y.Data) && maps.EqualFunc(x.BinaryData, y.BinaryData, bytesEqual)
	case *corev1.Secret:
		y, ok := b.(*corev1.Secret)
		return ok && maps.EqualFunc(x.Data, y.Data, bytesEqual)
	}
	return false
}

// fresher returns the importer's own last write of an object instead of cached when the cache
// still shows the state that write replaced (or nothing, after a create); otherwise cached,
// which may be newer than our write (someone else changed it since).
func (w *ownWrites) fresher(kind, ns, name string, cached metav1.Object, inCache bool) (metav1.Object, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.m[writeKey(kind, ns, name)]
	switch {
	case !ok:
		return cached, inCache
	case !inCache && last.prevRV == "":
		return last.obj, true // created; the cache has not seen it yet
	case inCache && cached.GetResourceVersion() == last.prevRV:
		return last.obj, true
	}
	return cached, inCache
}

const (
	kindConfigMap = "configmap"
	kindSecret    = "secret"
)

// cachedConfigMap reads one of the agent's ConfigMaps from the informer cache (a copy).
func (im *Importer) cachedConfigMap(ns, name string) (*corev1.ConfigMap, bool) {
	c, ok := im.cfg.Cache.OwnConfigMap(ns, name)
	return fresherCopy(&im.writes, kindConfigMap, ns, name, c, ok)
}

// cachedSecret reads one of the agent's Secrets from the informer cache (a copy).
func (im *Importer) cachedSecret(ns, name string) (*corev1.Secret, bool) {
	s, ok := im.cfg.Cache.OwnSecret(ns, name)
	return fresherCopy(&im.writes, kindSecret, ns, name, s, ok)
}

// fresherCopy is a copy of what w.fresher returns for an object the cache holds as cached (when
// inCache).
func fresherCopy[T interface {
	metav1.Object
	DeepCopy() T
}](w *ownWrites, kind, ns, name string, cached T, inCache bool) (T, bool) {
	var c metav1.Object // nil, not a nil T, when the cache does not hold it
	if inCache {
		c = cached
	}
	obj, ok := w.fresher(kind, ns, name, c, inCache)
	if !ok {
		var none T
		return none, false
	}
	return obj.(T).DeepCopy(), true
}

// ownObjectEcho reports whether an informer event of one of the agent's objects is the echo of
// the importer's own write (nothing to do), and forgets deleted objects.
func (im *Importer) ownObjectEcho(old, new any) bool {
	kind := func(o any) string {
		switch o.(type) {
		case *corev1.ConfigMap:
			return kindConfigMap
		case *corev1.Secret:
			return kindSecret
		}
		return ""
	}
	if new == nil {
		if m, ok := old.(metav1.Object); ok && kind(old) != "" {
			im.writes.forget(kind(old), m.GetNamespace(), m.GetName())
		}
		return false
	}
	m, ok := new.(metav1.Object)
	return ok && kind(new) != "" && im.writes.echo(kind(new), m)
}
