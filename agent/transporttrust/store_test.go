package transporttrust

import (
	"context"
	"crypto/x509"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/wiring"
)

func elasticsearch(name, caConfigMap string) *unstructured.Unstructured {
	spec := map[string]any{"version": "8.13.4", "nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}}
	if caConfigMap != "" {
		spec["transport"] = map[string]any{"tls": map[string]any{"certificateAuthorities": map[string]any{"configMapName": caConfigMap}}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec":     spec,
	}}
}

type fixture struct {
	store *Store
	kube  *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
}

func newFixture(t *testing.T, es *unstructured.Unstructured, objs ...runtime.Object) *fixture {
	t.Helper()
	kube := fake.NewClientset(objs...)
	dyn := fakekube.Dynamic(t, nil, es)
	return &fixture{store: &Store{Kube: kube, Editor: wiring.NewEditor(dyn, nil), Now: func() time.Time { return now }}, kube: kube, dyn: dyn}
}

// es returns the stored Elasticsearch.
func (f *fixture) es(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	es, err := f.dyn.Resource(eck.ElasticsearchGVR).Namespace("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func (f *fixture) configMap(name string) (*corev1.ConfigMap, error) {
	return f.kube.CoreV1().ConfigMaps("ns").Get(context.Background(), name, metav1.GetOptions{})
}

// apply has the store apply want to es with mode, failing t on an error.
func (f *fixture) apply(t *testing.T, es *unstructured.Unstructured, want map[string][]*x509.Certificate, mode wiring.Mode) {
	t.Helper()
	if _, err := f.store.Apply(t.Context(), es, want, mode); err != nil {
		t.Fatal(err)
	}
}

// wantNoOwnConfigMap fails t, saying problem, while ecklink's own ConfigMap of logs exists.
func (f *fixture) wantNoOwnConfigMap(t *testing.T, problem string) {
	t.Helper()
	if _, err := f.configMap("logs-ecklink-transport-ca"); !apierrors.IsNotFound(err) {
		t.Errorf("%s: %v", problem, err)
	}
}

func TestStoreCreatesWiresAndRemovesItsOwnConfigMap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, elasticsearch("logs", ""))
	peer := newCA(t, "peer", now.Add(time.Hour))
	res, err := f.store.Apply(ctx, f.es(t, "logs"), map[string][]*x509.Certificate{"export/east/a/ccs/x": {peer}}, wiring.Managed)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigMap != "logs-ecklink-transport-ca" || !res.Own || !res.Wired || len(res.Owners["export/east/a/ccs/x"]) != 1 {
		t.Fatalf("result = %+v", res)
	}
	cm, err := f.configMap("logs-ecklink-transport-ca")
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels[cache.ManagedByLabel] != cache.ManagedByValue || cm.Labels[LabelElasticsearch] != "logs" || len(cm.OwnerReferences) > 0 {
		t.Errorf("ConfigMap metadata = %+v", cm.ObjectMeta)
	}
	es := f.es(t, "logs")
	if wiring.TransportCAConfigMapOf(es) != "logs-ecklink-transport-ca" || !wiring.TransportCAWiredByUs(es) {
		t.Fatalf("Elasticsearch not wired: %v", es.Object["spec"])
	}

	// A second owner (the importer of the same Elasticsearch), then the first leaves: all stays.
	other := newCA(t, "other", now.Add(time.Hour))
	f.apply(t, es, map[string][]*x509.Certificate{"import/y": {other}}, wiring.Managed)
	f.apply(t, f.es(t, "logs"), map[string][]*x509.Certificate{"export/east/a/ccs/x": nil}, wiring.Managed)
	if _, err := f.configMap("logs-ecklink-transport-ca"); err != nil {
		t.Fatalf("ConfigMap deleted while an owner remains: %v", err)
	}
	// The last owner leaves: unwired, then deleted; the spec is back to its old shape. The
	// object handed in (callers hand the informer's cached copy) is not written.
	given := f.es(t, "logs")
	before := given.DeepCopy()
	f.apply(t, given, map[string][]*x509.Certificate{"import/y": nil}, wiring.Managed)
	if !reflect.DeepEqual(given.Object, before.Object) {
		t.Error("Apply changed the Elasticsearch object it was given (the informer's cache, for its callers)")
	}
	f.wantNoOwnConfigMap(t, "ConfigMap still there")
	es = f.es(t, "logs")
	if _, found, _ := unstructured.NestedMap(es.Object, "spec", "transport"); found || wiring.TransportCAWiredByUs(es) {
		t.Errorf("Elasticsearch still wired: spec=%v annotations=%v", es.Object["spec"], es.GetAnnotations())
	}
	// Removing again does nothing and creates nothing.
	f.apply(t, es, map[string][]*x509.Certificate{"import/y": nil}, wiring.Managed)
	f.wantNoOwnConfigMap(t, "ConfigMap created for a removal")
}

func TestStoreJoinsTheUsersConfigMap(t *testing.T) {
	ctx := context.Background()
	user := newCA(t, "user", now.Add(time.Hour))
	userCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "user-cas", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Data: map[string]string{Key: pemOf(user)}}
	f := newFixture(t, elasticsearch("logs", "user-cas"), userCM)
	peer := newCA(t, "peer", now.Add(time.Hour))
	res, err := f.store.Apply(ctx, f.es(t, "logs"), map[string][]*x509.Certificate{"import/x": {peer}}, wiring.Managed)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigMap != "user-cas" || res.Own || !res.Wired {
		t.Errorf("result = %+v", res)
	}
	cm, _ := f.configMap("user-cas")
	if got := fingerprints(t, cm); !equal(got, []string{fp(user), fp(peer)}) {
		t.Errorf("bundle = %v", got)
	}
	f.apply(t, f.es(t, "logs"), map[string][]*x509.Certificate{"import/x": nil}, wiring.Managed)
	cm, err = f.configMap("user-cas")
	if err != nil {
		t.Fatalf("the user's ConfigMap was deleted: %v", err)
	}
	if cm.Data[Key] != pemOf(user) || cm.Labels["team"] != "a" || cm.Annotations[AnnotationCAs] != "" {
		t.Errorf("the user's ConfigMap is not as it was: %+v %q", cm.ObjectMeta, cm.Data[Key])
	}
	if es := f.es(t, "logs"); wiring.TransportCAConfigMapOf(es) != "user-cas" || wiring.TransportCAWiredByUs(es) {
		t.Errorf("the user's wiring changed: %v", es.Object["spec"])
	}
}

func TestStoreRefusesAMissingUserConfigMap(t *testing.T) {
	f := newFixture(t, elasticsearch("logs", "gone"))
	_, err := f.store.Apply(context.Background(), f.es(t, "logs"), map[string][]*x509.Certificate{"import/x": {newCA(t, "p", now.Add(time.Hour))}}, wiring.Managed)
	if err == nil || !strings.Contains(err.Error(), "ConfigMap gone") {
		t.Errorf("err = %v, want the missing ConfigMap named", err)
	}
	if _, err := f.configMap("gone"); !apierrors.IsNotFound(err) {
		t.Error("the user's ConfigMap was created by ecklink")
	}
}

func TestStoreManualWiringLeavesTheResourceAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, elasticsearch("logs", ""))
	res, err := f.store.Apply(ctx, f.es(t, "logs"), map[string][]*x509.Certificate{"import/x": {newCA(t, "p", now.Add(time.Hour))}}, wiring.Manual)
	if err != nil {
		t.Fatal(err)
	}
	if res.Wired || !strings.Contains(res.Snippet, "configMapName: logs-ecklink-transport-ca") {
		t.Errorf("result = %+v", res)
	}
	if es := f.es(t, "logs"); wiring.TransportCAConfigMapOf(es) != "" {
		t.Error("manual mode wired the Elasticsearch")
	}
	// The user commits the snippet; when the last owner goes the ConfigMap stays (ECK needs it).
	es := f.es(t, "logs")
	_ = unstructured.SetNestedField(es.Object, "logs-ecklink-transport-ca", "spec", "transport", "tls", "certificateAuthorities", "configMapName")
	if _, err := f.dyn.Resource(eck.ElasticsearchGVR).Namespace("ns").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.apply(t, f.es(t, "logs"), map[string][]*x509.Certificate{"import/x": nil}, wiring.Manual)
	cm, err := f.configMap("logs-ecklink-transport-ca")
	if err != nil {
		t.Fatalf("ConfigMap the user wired was deleted: %v", err)
	}
	if _, ok := cm.Data[Key]; !ok {
		t.Error("ConfigMap lost its ca.crt key, which ECK requires")
	}
}

func TestStoreReleaseOrphaned(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, elasticsearch("logs", ""))
	f.apply(t, f.es(t, "logs"), map[string][]*x509.Certificate{
		"import/x": {newCA(t, "p", now.Add(time.Hour))}, "export/east/a/b/c": {newCA(t, "q", now.Add(time.Hour))},
	}, wiring.Managed)
	if err := f.store.ReleaseOrphaned(ctx, "ns", "logs", func(o string) bool { return strings.HasPrefix(o, "import/") }); err != nil {
		t.Fatal(err)
	}
	cm, err := f.configMap("logs-ecklink-transport-ca")
	if err != nil {
		t.Fatal(err)
	}
	if owners, _ := Owners(cm); len(owners) != 1 || owners["export/east/a/b/c"] == nil {
		t.Errorf("owners = %v", owners)
	}
	if err := f.store.ReleaseOrphaned(ctx, "ns", "logs", func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	f.wantNoOwnConfigMap(t, "ConfigMap still there")
}

func TestStoreMovesToAConfigMapTheUserNamesLater(t *testing.T) {
	ctx := context.Background()
	user := newCA(t, "user", now.Add(time.Hour))
	userCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "user-cas", Namespace: "ns"}, Data: map[string]string{Key: pemOf(user)}}
	f := newFixture(t, elasticsearch("logs", ""), userCM)
	peer := newCA(t, "peer", now.Add(time.Hour))
	want := map[string][]*x509.Certificate{"import/x": {peer}}
	f.apply(t, f.es(t, "logs"), want, wiring.Managed)
	// The user names their own ConfigMap instead (ecklink's record stays on the resource).
	es := f.es(t, "logs")
	_ = unstructured.SetNestedField(es.Object, "user-cas", "spec", "transport", "tls", "certificateAuthorities", "configMapName")
	if _, err := f.dyn.Resource(eck.ElasticsearchGVR).Namespace("ns").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.Apply(ctx, f.es(t, "logs"), want, wiring.Managed)
	if err != nil {
		t.Fatal(err)
	}
	if res.ConfigMap != "user-cas" || !res.Wired {
		t.Errorf("result = %+v", res)
	}
	cm, _ := f.configMap("user-cas")
	if got := fingerprints(t, cm); !equal(got, []string{fp(user), fp(peer)}) {
		t.Errorf("user-cas = %v", got)
	}
	f.wantNoOwnConfigMap(t, "ecklink's ConfigMap is left behind")
	if es := f.es(t, "logs"); wiring.TransportCAWiredByUs(es) || wiring.TransportCAConfigMapOf(es) != "user-cas" {
		t.Errorf("wiring = %q, record %v", wiring.TransportCAConfigMapOf(es), es.GetAnnotations())
	}
}

func TestStoreFinishesARemovalCutShort(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, elasticsearch("logs", ""))
	want := map[string][]*x509.Certificate{"import/x": {newCA(t, "p", now.Add(time.Hour))}}
	f.apply(t, f.es(t, "logs"), want, wiring.Managed)
	// The last owner left the ConfigMap, then the unwiring failed (a conflict): the ConfigMap is
	// empty but still there and wired.
	cm, _ := f.configMap("logs-ecklink-transport-ca")
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/x": nil}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kube.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.Read(ctx, f.es(t, "logs"))
	if err != nil || !res.Leftover(f.es(t, "logs")) {
		t.Fatalf("Leftover = false for %+v (%v)", res, err)
	}
	f.apply(t, f.es(t, "logs"), nil, wiring.Managed)
	f.wantNoOwnConfigMap(t, "ConfigMap still there")
	es := f.es(t, "logs")
	if wiring.TransportCAConfigMapOf(es) != "" || wiring.TransportCAWiredByUs(es) {
		t.Errorf("still wired: %v", es.Object["spec"])
	}
	if res, _ := f.store.Read(ctx, es); res.Leftover(es) {
		t.Error("Leftover after the cleanup")
	}
}
