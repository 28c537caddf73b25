package cache

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func remoteCluster(name, uid, rv, alias string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ecklink.io/v1alpha1", "kind": "RemoteCluster",
		"metadata": map[string]any{"namespace": "ns", "name": name, "uid": uid, "resourceVersion": rv},
		"spec":     map[string]any{"alias": alias, "elasticsearchRef": map[string]any{"name": "es"}},
	}}
	return u
}

func TestTyped(t *testing.T) {
	a1, a2 := remoteCluster("a", "u1", "1", "one"), remoteCluster("a", "u1", "2", "two")
	b1 := remoteCluster("b", "u2", "1", "b")
	tests := []struct {
		name  string
		steps [][]*unstructured.Unstructured // one list per step
		want  []string                       // aliases of the last list, in order
		kept  int                            // entries remembered after the last list
	}{
		{"one version, one entry", [][]*unstructured.Unstructured{{a1}, {a1}, {a1}}, []string{"one"}, 1},
		{"a new version (the informer's new object) is converted, the old forgotten", [][]*unstructured.Unstructured{{a1}, {a2}}, []string{"two"}, 1},
		{"deleted objects are forgotten", [][]*unstructured.Unstructured{{a1, b1}, {b1}}, []string{"b"}, 1},
		{"several objects", [][]*unstructured.Unstructured{{a1, b1}, {b1, a1}}, []string{"b", "one"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTyped((*v1alpha1.RemoteCluster).DeepCopy)
			var got []*v1alpha1.RemoteCluster
			for _, step := range tt.steps {
				objs := make([]any, len(step))
				for i, u := range step {
					objs[i] = u
				}
				got = m.list(objs)
			}
			var aliases []string
			for _, rc := range got {
				aliases = append(aliases, rc.Spec.Alias)
			}
			if fmt.Sprint(aliases) != fmt.Sprint(tt.want) {
				t.Errorf("aliases %v, want %v", aliases, tt.want)
			}
			if len(m.byObj) != tt.kept {
				t.Errorf("%d entries kept, want %d", len(m.byObj), tt.kept)
			}
		})
	}
}

// TestTypedCopies: what a caller gets is its own: changing it changes neither the cache nor what
// the next caller gets.
func TestTypedCopies(t *testing.T) {
	m := newTyped((*v1alpha1.RemoteCluster).DeepCopy)
	u := remoteCluster("a", "u1", "1", "one")
	first := m.list([]any{u})[0]
	first.Spec.Alias = "changed"
	first.Labels = map[string]string{"x": "y"}
	again, ok := m.get(u)
	if !ok || again.Spec.Alias != "one" || again.Labels != nil {
		t.Fatalf("second caller got %+v (ok %v), want the unchanged object", again, ok)
	}
	if again == first {
		t.Fatal("two callers got the same pointer")
	}
	if alias, _, _ := unstructured.NestedString(u.Object, "spec", "alias"); alias != "one" {
		t.Fatalf("the informer's object changed: alias %q", alias)
	}
	if len(m.byObj) != 1 {
		t.Fatalf("%d entries, want 1", len(m.byObj))
	}
}

// BenchmarkRemoteClusters: listing 1,000 RemoteClusters, converted each time (as before) and
// through typed.
func BenchmarkRemoteClusters(b *testing.B) {
	objs := make([]any, 1000)
	for i := range objs {
		objs[i] = remoteCluster(fmt.Sprintf("rc-%d", i), fmt.Sprintf("u%d", i), "1", fmt.Sprintf("alias-%d", i))
	}
	b.Run("convert", func(b *testing.B) {
		for range b.N {
			m := newTyped((*v1alpha1.RemoteCluster).DeepCopy)
			_ = m.list(objs)
		}
	})
	b.Run("typed", func(b *testing.B) {
		m := newTyped((*v1alpha1.RemoteCluster).DeepCopy)
		_ = m.list(objs)
		b.ResetTimer()
		for range b.N {
			_ = m.list(objs)
		}
	})
}

// TestRemoteClustersAreKeptTyped: the RemoteCluster informers keep the typed object without
// managedFields (the transform), the index still finds it by its Elasticsearch, and callers get
// copies of it.
func TestRemoteClustersAreKeptTyped(t *testing.T) {
	u := remoteCluster("a", "u1", "1", "one")
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}})
	obj, err := typedRemoteCluster(u)
	if err != nil {
		t.Fatal(err)
	}
	rc, ok := obj.(*v1alpha1.RemoteCluster)
	if !ok {
		t.Fatalf("the informer keeps %T, want *v1alpha1.RemoteCluster", obj)
	}
	if rc.Spec.Alias != "one" || rc.ManagedFields != nil {
		t.Fatalf("kept %+v; want alias one and no managedFields", rc)
	}
	if keys, _ := remoteClusterElasticsearch(obj); fmt.Sprint(keys) != "[ns/es]" {
		t.Errorf("index keys %v, want [ns/es]", keys)
	}
	m := newTyped((*v1alpha1.RemoteCluster).DeepCopy)
	got, ok := m.get(obj)
	if !ok || got == rc {
		t.Fatalf("callers got %v; want a copy", got)
	}
	got.Spec.Alias = "changed"
	if rc.Spec.Alias != "one" {
		t.Fatal("a caller's change reached the informer's object")
	}
	// An object that does not convert stays as it came.
	bad := remoteCluster("b", "u2", "1", "b")
	_ = unstructured.SetNestedField(bad.Object, "not-a-bool", "spec", "skipUnavailable")
	if obj, _ := typedRemoteCluster(bad); obj != bad {
		t.Errorf("an object that does not convert became %T", obj)
	}
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"status only", rc, func() any { c := rc.DeepCopy(); c.Status.Model = v1alpha1.SecurityModelAPIKey; return c }(), false},
		{"generation", rc, func() any { c := rc.DeepCopy(); c.Generation++; return c }(), true},
		{"finalizer", rc, func() any { c := rc.DeepCopy(); c.Finalizers = []string{"x"}; return c }(), true},
		{"add", nil, rc, true},
		{"unstructured", u, remoteCluster("a", "u1", "2", "one"), false},
	} {
		if got := SpecChanged(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: SpecChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGetWithLeavesOutWhatTheCopyDoes: getWith hands out the copy its function makes (the
// ClusterExport read without its status), from the same converted object, never the cached one.
func TestGetWithLeavesOutWhatTheCopyDoes(t *testing.T) {
	m := newTyped((*v1alpha1.ClusterExport).DeepCopy)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ecklink.io/v1alpha1", "kind": "ClusterExport",
		"metadata": map[string]any{"namespace": "ns", "name": "logs", "uid": "u1", "resourceVersion": "1"},
		"spec":     map[string]any{"elasticsearchRef": map[string]any{"name": "es"}},
		"status":   map[string]any{"linkCount": int64(7)},
	}}
	specOnly := func(e *v1alpha1.ClusterExport) *v1alpha1.ClusterExport {
		out := &v1alpha1.ClusterExport{TypeMeta: e.TypeMeta}
		e.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
		e.Spec.DeepCopyInto(&out.Spec)
		return out
	}
	got, ok := m.getWith(u, specOnly)
	if !ok || got.Spec.ElasticsearchRef.Name != "es" || got.Name != "logs" || got.Status.LinkCount != 0 {
		t.Fatalf("getWith = %+v (ok %v); want the metadata and spec without the status", got, ok)
	}
	got.Spec.ElasticsearchRef.Name = "changed"
	full, _ := m.get(u)
	if full.Status.LinkCount != 7 || full.Spec.ElasticsearchRef.Name != "es" {
		t.Fatalf("get after getWith = %+v; want the whole, unchanged object", full)
	}
	if len(m.byObj) != 1 {
		t.Errorf("%d conversions kept, want 1 for both reads", len(m.byObj))
	}
}

// TestSharedListsAreTheInformersObjects: the shared lists hand out the informer's own typed
// RemoteClusters (no copy, status included) and skip one that stayed unstructured.
func TestSharedListsAreTheInformersObjects(t *testing.T) {
	obj, err := typedRemoteCluster(remoteCluster("a", "u1", "1", "one"))
	if err != nil {
		t.Fatal(err)
	}
	rc := obj.(*v1alpha1.RemoteCluster)
	rc.Status.ProxyAddress = "203.0.113.7:9443"
	unconverted := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "ecklink.io/v1alpha1", "kind": "RemoteCluster",
		"metadata": map[string]any{"namespace": "ns", "name": "b"}, "spec": "not an object"}}
	got := shared([]any{obj, unconverted})
	if len(got) != 1 || got[0] != rc || got[0].Status.ProxyAddress == "" {
		t.Fatalf("shared = %v; want the one typed object itself, with its status", got)
	}
}
