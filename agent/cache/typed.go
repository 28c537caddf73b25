package cache

import (
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/kube"
)

// typed keeps the typed form of the objects of one kind, converted from the informer's
// unstructured object once per version of it. Converting is reflection over every field (tens of
// microseconds per RemoteCluster), and the halves read the objects of a kind on every pass: at
// 1,000 RemoteClusters, converting was most of the importer's CPU. An informer replaces the
// object it holds on every change and never changes one in place (nobody may), so the
// unstructured object's address names its version. Callers get a deep copy (no reflection), so
// they may change what they get.
type typed[T any] struct {
	deepCopy func(*T) *T

	mu    sync.Mutex
	byObj map[*unstructured.Unstructured]typedEntry[T]
	lists uint64 // lists started; entries are marked with the last list (or get) that saw them
}

type typedEntry[T any] struct {
	obj  *T
	seen uint64
}

func newTyped[T any](deepCopy func(*T) *T) *typed[T] {
	return &typed[T]{deepCopy: deepCopy, byObj: map[*unstructured.Unstructured]typedEntry[T]{}}
}

// get returns a copy of the typed form of obj (as the informer holds it).
func (m *typed[T]) get(obj any) (*T, bool) { return m.getWith(obj, m.deepCopy) }

// getWith is get with the copy made by cp (which may leave out what the caller does not read).
func (m *typed[T]) getWith(obj any, cp func(*T) *T) (*T, bool) {
	return m.convertWith(obj, m.lastList(), cp)
}

// lastList is the mark of the last list started: what a get sees is kept as long as that list.
func (m *typed[T]) lastList() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lists
}

// list returns copies of the typed forms of objs, every object of the kind, and forgets the
// versions no longer among them.
func (m *typed[T]) list(objs []any) []*T {
	m.mu.Lock()
	m.lists++
	list := m.lists
	m.mu.Unlock()
	out := m.convertAll(objs, list)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.byObj) > len(objs) {
		for k, e := range m.byObj {
			if e.seen < list {
				delete(m.byObj, k)
			}
		}
	}
	return out
}

func (m *typed[T]) convertAll(objs []any, list uint64) []*T {
	out := make([]*T, 0, len(objs))
	for _, o := range objs {
		if t, ok := m.convertWith(o, list, m.deepCopy); ok {
			out = append(out, t)
		}
	}
	return out
}

func (m *typed[T]) convertWith(obj any, list uint64, cp func(*T) *T) (*T, bool) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		// Typed already (the informer's transform converted it): a copy, as for the others.
		t, err := kube.FromObject[T](obj)
		if err != nil {
			return nil, false
		}
		return cp(t), true
	}
	m.mu.Lock()
	e, hit := m.byObj[u]
	if hit {
		e.seen = max(e.seen, list)
		m.byObj[u] = e
	}
	m.mu.Unlock()
	if hit {
		return cp(e.obj), true
	}
	t, err := kube.FromUnstructured[T](u)
	if err != nil {
		return nil, false
	}
	m.mu.Lock()
	m.byObj[u] = typedEntry[T]{obj: t, seen: list}
	m.mu.Unlock()
	return cp(t), true
}
