package importer

import (
	"encoding/json"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
)

// aliasFixture has, in search/ccs, the alias west-logs that the agent configured (its
// RemoteCluster's status reports the proxy address Elasticsearch has) and users-own that someone
// else configured, which a namespace user added to release 0.1.0's lists of agent aliases (the
// annotation of ccs-ecklink-remote-ca and the owners of the transport CA ConfigMap).
func aliasFixture(t *testing.T) (*fixture, *unstructured.Unstructured) {
	t.Helper()
	f := newFixture(t, remoteCluster("west-logs", ""))
	ctx := t.Context()
	for alias, addr := range map[string]string{"west-logs": "203.0.113.9:9443", "users-own": "192.0.2.1:9443"} {
		if _, err := f.es.PutRemote(ctx, alias, elastic.RemoteSettings{Mode: "proxy", ProxyAddress: addr}); err != nil {
			t.Fatal(err)
		}
	}
	rc := f.remoteCluster(t, "west-logs")
	if _, err := f.CRDs.RemoteClusters().UpdateStatus(ctx, rc, func(rc *v1alpha1.RemoteCluster) error {
		rc.Status.ProxyAddress = "203.0.113.9:9443"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		rcs := f.im.cfg.Cache.RemoteClustersShared()
		return len(rcs) == 1 && rcs[0].Status.ProxyAddress != ""
	})
	legacy, _ := json.Marshal([]string{"users-own", "west-logs"})
	owners, _ := json.Marshal(map[string][]string{"import/users-own": {}})
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: wiring.CAConfigMapName(fxES), Labels: ownLabels(fxES), Annotations: map[string]string{annotationAliases: string(legacy)}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: fxES + "-ecklink-transport-ca", Annotations: map[string]string{transporttrust.AnnotationCAs: string(owners)}}},
	} {
		if _, err := f.Kube.CoreV1().ConfigMaps(fxNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent reads its own objects from the informer cache (0.1.0 labelled them as now).
	waitCache(t, func() bool {
		_, ok := f.im.cachedConfigMap(fxNS, wiring.CAConfigMapName(fxES))
		return ok
	})
	return f, f.storedES(t)
}

// TestAliasRecordMigrationAdoptsOnlyWhatTheAgentConfigured: the record migrated from 0.1.0's
// annotations holds west-logs and not users-own, and it lives in the agent's namespace.
func TestAliasRecordMigrationAdoptsOnlyWhatTheAgentConfigured(t *testing.T) {
	f, es := aliasFixture(t)
	rec, err := f.im.loadAliases(t.Context(), es, func() (*elastic.Client, error) { return f.es, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.list(); !slices.Equal(got, []string{"west-logs"}) {
		t.Fatalf("migrated aliases %v, want [west-logs]", got)
	}
	cm, err := f.Kube.CoreV1().ConfigMaps(fxAgentNS).Get(t.Context(), aliasRecordName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no record in the agent's namespace: %v", err)
	}
	if got := cm.Data[recordKey(fxNS, fxES)]; got != `{"uid":"uid-ccs-1","aliases":["west-logs"]}` {
		t.Errorf("record entry %s", got)
	}
}

// TestForeignAliasSurvives is the attack: a namespace user adds someone else's alias to
// whatever it can still edit (0.1.0's annotation, the transport CA owners), and the agent, when
// it lets go of every alias of its own, removes west-logs and never users-own.
func TestForeignAliasSurvives(t *testing.T) {
	f, es := aliasFixture(t)
	ctx := t.Context()
	if _, err := f.im.loadAliases(ctx, es, func() (*elastic.Client, error) { return f.es, nil }); err != nil {
		t.Fatal(err)
	}
	// After the migration, the user edits the annotation again: it is not read any more.
	cm, err := f.Kube.CoreV1().ConfigMaps(fxNS).Get(ctx, wiring.CAConfigMapName(fxES), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Annotations[annotationAliases] = `["users-own","west-logs","another"]`
	if _, err := f.Kube.CoreV1().ConfigMaps(fxNS).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err := f.im.loadAliases(ctx, es, func() (*elastic.Client, error) { return f.es, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := f.im.releaseAliases(ctx, rec, map[string]bool{}, func() (*elastic.Client, error) { return f.es, nil }); err != nil {
		t.Fatal(err)
	}
	settings, err := f.es.GetRemoteSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := settings["users-own"]; !ok {
		t.Error("the agent removed users-own, an alias it never configured")
	}
	if _, ok := settings["west-logs"]; ok {
		t.Error("the agent kept west-logs, its own alias that nothing wants")
	}
	if rec, err = f.im.loadAliases(ctx, es, func() (*elastic.Client, error) { return f.es, nil }); err != nil || len(rec.list()) != 0 {
		t.Errorf("record after the release: %v (%v), want no alias", rec.list(), err)
	}
}

// TestAliasRecordOfAnEarlierElasticsearch: a record whose UID is not the Elasticsearch's is of a
// deleted namesake; its aliases are not this Elasticsearch's.
func TestAliasRecordOfAnEarlierElasticsearch(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.Kube.CoreV1().ConfigMaps(fxAgentNS).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: fxAgentNS, Name: aliasRecordName},
		Data:       map[string]string{recordKey(fxNS, fxES): `{"uid":"uid-of-a-deleted-one","aliases":["old"]}`},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	es := f.storedES(t)
	rec, err := f.im.loadAliases(ctx, es, func() (*elastic.Client, error) { return f.es, nil })
	if err != nil {
		t.Fatal(err)
	}
	if rec.has("old") {
		t.Error("an alias of the deleted namesake is taken for this Elasticsearch's")
	}
}
