package importer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// layoutCAs are test CAs by common name, and PEM bundles made of them.
type layoutCAs map[string][]byte

func (c layoutCAs) bundle(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.Write(c[n])
	}
	return b.String()
}

// names lists the common names of a bundle's CAs, in order.
func bundleNames(t *testing.T, bundle string) string {
	t.Helper()
	certs, err := pemutil.ParseCertificates([]byte(bundle), pemutil.Limits{})
	if err != nil {
		t.Fatalf("unreadable bundle: %v", err)
	}
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return strings.Join(out, ",")
}

// currentLayout is a CA ConfigMap as this release writes it.
func currentLayout(bundles map[string]string) *corev1.ConfigMap {
	data, index := caConfigMapData(bundles)
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{wiring.AnnotationCAEntries: index}}, Data: data}
}

// layout010 is a CA ConfigMap as release 0.1.0 wrote it: one <alias>.crt key per alias, no index.
func layout010(bundles map[string]string) *corev1.ConfigMap {
	data := map[string]string{wiring.CAFileKey: combinedBundle(bundles)}
	for alias, b := range bundles {
		data[alias+".crt"] = b
	}
	return &corev1.ConfigMap{Data: data}
}

func manyAliases(n int, bundle string) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("logs-%02d", i)] = bundle
	}
	return out
}

// TestCAConfigMapLayout: each distinct bundle is stored once, the index names the one every
// alias uses, ca.crt combines them, and retention (pemutil.Retain) still works per alias,
// across a rotation and across the upgrade from release 0.1.0's layout.
func TestCAConfigMapLayout(t *testing.T) {
	cas := layoutCAs{}
	for _, n := range []string{"west-1", "west-2", "north-1", "north-2"} {
		cas[n] = newTestCA(t, n)
	}
	in := func(names ...string) []byte { return []byte(cas.bundle(names...)) }
	fifty := map[string][]byte{}
	for alias := range manyAliases(50, "") {
		fifty[alias] = in("west-1")
	}
	fiftyRotated := map[string][]byte{}
	for alias := range fifty {
		fiftyRotated[alias] = in("west-2")
	}
	for _, tc := range []struct {
		name     string
		previous *corev1.ConfigMap
		incoming map[string][]byte
		held     []string
		// want is alias -> the CAs its bundle holds, newest first.
		want    map[string]string
		entries int
		ca      string // ca.crt's CAs, in order
	}{
		{
			name: "one alias", previous: &corev1.ConfigMap{},
			incoming: map[string][]byte{"logs": in("west-1")},
			want:     map[string]string{"logs": "west-1"}, entries: 1, ca: "west-1",
		},
		{
			name: "50 aliases of one source share one entry", previous: &corev1.ConfigMap{},
			incoming: fifty,
			want:     map[string]string{"logs-00": "west-1", "logs-49": "west-1"}, entries: 1, ca: "west-1",
		},
		{
			name: "rotation of 50 aliases keeps the previous CA in their one entry", previous: currentLayout(manyAliases(50, cas.bundle("west-1"))),
			incoming: fiftyRotated,
			want:     map[string]string{"logs-00": "west-2,west-1", "logs-49": "west-2,west-1"}, entries: 1, ca: "west-2,west-1",
		},
		{
			name: "two sources, two entries", previous: &corev1.ConfigMap{},
			incoming: map[string][]byte{"logs": in("west-1"), "metrics": in("west-1"), "audit": in("north-1")},
			want:     map[string]string{"logs": "west-1", "metrics": "west-1", "audit": "north-1"}, entries: 2, ca: "north-1,west-1",
		},
		{
			name:     "an alias whose bundle differs from its entry's other aliases gets its own entry",
			previous: currentLayout(map[string]string{"logs": cas.bundle("west-1"), "metrics": cas.bundle("west-1")}),
			incoming: map[string][]byte{"logs": in("west-2"), "metrics": in("west-1")},
			want:     map[string]string{"logs": "west-2,west-1", "metrics": "west-1"}, entries: 2, ca: "west-2,west-1",
		},
		{
			name:     "a removed alias's entry stays while another alias uses it",
			previous: currentLayout(map[string]string{"logs": cas.bundle("west-1"), "metrics": cas.bundle("west-1"), "audit": cas.bundle("north-1")}),
			incoming: map[string][]byte{"metrics": in("west-1"), "audit": in("north-1")},
			want:     map[string]string{"metrics": "west-1", "audit": "north-1"}, entries: 2, ca: "north-1,west-1",
		},
		{
			name:     "the last alias of an entry removed drops the entry",
			previous: currentLayout(map[string]string{"logs": cas.bundle("west-1"), "audit": cas.bundle("north-2", "north-1")}),
			incoming: map[string][]byte{"logs": in("west-1")},
			want:     map[string]string{"logs": "west-1"}, entries: 1, ca: "west-1",
		},
		{
			name:     "a held alias keeps its entry",
			previous: currentLayout(map[string]string{"logs": cas.bundle("west-1"), "audit": cas.bundle("north-1")}),
			incoming: map[string][]byte{"logs": in("west-2")}, held: []string{"audit"},
			want: map[string]string{"logs": "west-2,west-1", "audit": "north-1"}, entries: 2, ca: "north-1,west-2,west-1",
		},
		{
			name:     "release 0.1.0's layout is read, and no retained CA is lost",
			previous: layout010(map[string]string{"logs": cas.bundle("west-2", "west-1"), "metrics": cas.bundle("west-2", "west-1"), "audit": cas.bundle("north-1"), "held": cas.bundle("north-2")}),
			incoming: map[string][]byte{"logs": in("west-2"), "metrics": in("west-2"), "audit": in("north-2")}, held: []string{"held"},
			want: map[string]string{"logs": "west-2,west-1", "metrics": "west-2,west-1", "audit": "north-2,north-1", "held": "north-2"}, entries: 3,
			ca: "north-2,north-1,west-2,west-1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundles, err := nextCABundles(tc.previous, tc.incoming, tc.held, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			data, index := caConfigMapData(bundles)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{wiring.AnnotationCAEntries: index}}, Data: data}
			read := wiring.AliasCABundles(cm.Data, cm.Annotations)
			if got, want := slices.Sorted(maps.Keys(read)), slices.Sorted(maps.Keys(bundles)); !slices.Equal(got, want) {
				t.Fatalf("the ConfigMap holds aliases %v, want %v", got, want)
			}
			for alias, want := range tc.want {
				if got := bundleNames(t, read[alias]); got != want {
					t.Errorf("alias %s uses %s, want %s", alias, got, want)
				}
			}
			if got := len(data) - 1; got != tc.entries {
				t.Errorf("%d entries besides ca.crt, want %d: %v", got, tc.entries, slices.Sorted(maps.Keys(data)))
			}
			if got := bundleNames(t, data[wiring.CAFileKey]); got != tc.ca {
				t.Errorf("ca.crt holds %s, want %s", got, tc.ca)
			}
			for k := range data {
				if k != wiring.CAFileKey && !strings.HasPrefix(k, "src-") {
					t.Errorf("key %s is neither ca.crt nor an entry", k)
				}
			}
			// Written again from what it holds, the ConfigMap does not change.
			again, err := nextCABundles(cm, tc.incoming, tc.held, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if data2, index2 := caConfigMapData(again); !maps.Equal(data, data2) || index != index2 {
				t.Error("a second pass with the same answers rewrites the ConfigMap")
			}
		})
	}
}

// TestCAConfigMapSize50Aliases: the ConfigMap of 50 links to one exported Elasticsearch,
// holding the current and the previous CA (a rotation in progress), in release 0.1.0's layout
// and in this one.
func TestCAConfigMapSize50Aliases(t *testing.T) {
	bundle := string(newTestCA(t, "west-2")) + string(newTestCA(t, "west-1"))
	size := func(cm *corev1.ConfigMap) int {
		n := 0
		for k, v := range cm.Data {
			n += len(k) + len(v)
		}
		for k, v := range cm.Annotations {
			n += len(k) + len(v)
		}
		return n
	}
	before, after := size(layout010(manyAliases(50, bundle))), size(currentLayout(manyAliases(50, bundle)))
	t.Logf("CA ConfigMap at 50 aliases, one bundle of 2 CAs (%d bytes): release 0.1.0 layout %d bytes, this layout %d bytes", len(bundle), before, after)
	if after > 4*len(bundle) {
		t.Errorf("the ConfigMap holds %d bytes for a %d-byte bundle: the bundle is stored more than once", after, len(bundle))
	}
}

// TestUpgradeFrom010CAConfigMap: the first full reconcile after an upgrade reads a CA
// ConfigMap written by release 0.1.0 (<alias>.crt keys, no index) as each alias's previous
// bundle and rewrites it in this layout, with no retained CA lost and no key of 0.1.0 left.
func TestUpgradeFrom010CAConfigMap(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelAPIKey), remoteCluster("metrics", v1alpha1.SecurityModelAPIKey))
	f.im.cfg.Recorder = kube.NewRecorderFor(record.NewFakeRecorder(100))
	cas := layoutCAs{"west-1": newTestCA(t, "west-1"), "west-2": newTestCA(t, "west-2")}
	name := wiring.CAConfigMapName(fxES)
	old := layout010(map[string]string{"logs": cas.bundle("west-2", "west-1"), "metrics": cas.bundle("west-2", "west-1")})
	old.ObjectMeta = metav1.ObjectMeta{Namespace: fxNS, Name: name, Labels: ownLabels(fxES)}
	if _, err := f.Kube.CoreV1().ConfigMaps(fxNS).Create(t.Context(), old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool { _, ok := f.im.cfg.Cache.OwnConfigMap(fxNS, name); return ok })
	for i, alias := range []string{"logs", "metrics"} {
		c := creds(cas["west-2"], fmt.Sprintf("key-%d", i))
		c.Link = link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: alias}.Proto()
		c.ApiKeyEncoded = base64.StdEncoding.EncodeToString([]byte(c.ApiKeyId + ":secret"))
		if err := f.im.OnCredentials(fxPeer, 1, c); err != nil {
			t.Fatalf("credentials of %s: %v", alias, err)
		}
	}
	f.reconcile(t)
	cm, err := f.Kube.CoreV1().ConfigMaps(fxNS).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Annotations[wiring.AnnotationCAEntries]; !ok {
		t.Fatalf("no %s annotation after the upgrade: %v", wiring.AnnotationCAEntries, cm.Annotations)
	}
	if keys := slices.Sorted(maps.Keys(cm.Data)); len(keys) != 2 || keys[0] != wiring.CAFileKey || keys[1] != wiring.CAEntryKey(cas.bundle("west-2", "west-1")) {
		t.Fatalf("keys %v, want ca.crt and one entry", keys)
	}
	for _, alias := range []string{"logs", "metrics"} {
		if got := bundleNames(t, wiring.AliasCABundles(cm.Data, cm.Annotations)[alias]); got != "west-2,west-1" {
			t.Errorf("alias %s uses %s after the upgrade, want west-2,west-1", alias, got)
		}
	}
	if got := bundleNames(t, cm.Data[wiring.CAFileKey]); got != "west-2,west-1" {
		t.Errorf("ca.crt holds %s after the upgrade, want west-2,west-1", got)
	}
}

// TestCARotationCostsNoFullReconcileAndNoElasticsearchCall: with many links applied, CAs the
// peer renews in quick succession (one shared bundle for all the links) reach the CA ConfigMap
// through the CA path alone. No full reconcile runs, neither for the answers nor for the echoes
// of the CA path's own ConfigMap writes (a write's watch event can arrive before its response,
// and the next write can land before the previous write's event), and Elasticsearch gets no
// request: a full reconcile here would cost Elasticsearch calls and status writes for every
// update of a rotation.
func TestCARotationCostsNoFullReconcileAndNoElasticsearchCall(t *testing.T) {
	const links, rotations = 20, 4
	var rcs []*v1alpha1.RemoteCluster
	for i := range links {
		rcs = append(rcs, remoteCluster(fmt.Sprintf("l-%02d", i), v1alpha1.SecurityModelAPIKey))
	}
	f := newFixture(t, rcs...)
	realisticWrites(f.Kube)
	// Nothing periodic in the way: what runs below is what the CA updates queue.
	f.im.cfg.Resync, f.im.cfg.Pending, f.im.cfg.SigningTick = time.Hour, time.Hour, time.Hour
	f.im.cfg.Recorder = kube.NewRecorderFor(record.NewFakeRecorder(1000))
	ref := link.ExportCAID("data", "logs")
	if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: newTestCA(t, "ca-0")}); err != nil {
		t.Fatal(err)
	}
	for i, rc := range rcs {
		id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: rc.Spec.Alias}
		keyID := fmt.Sprintf("key-%d", i)
		c := &peerv1.Credentials{Link: id.Proto(), Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: keyID,
			ApiKeyEncoded: base64.StdEncoding.EncodeToString([]byte(keyID + ":secret")), CaRef: ref, ProxyAddress: "logs.west.example:9443"}
		if err := f.im.OnCredentials(fxPeer, 1, c); err != nil {
			t.Fatalf("credentials of %s: %v", id, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.im.Run(ctx)
	}()
	defer func() { cancel(); <-done }()

	cm := wiring.CAConfigMapName(fxES)
	waitCache(t, func() bool {
		c, ok := f.im.cfg.Cache.OwnConfigMap(fxNS, cm)
		return ok && len(wiring.AliasCABundles(c.Data, c.Annotations)) == links
	})
	f.waitQuiet(t)
	if len(f.node.RemoteClusters()) != links {
		t.Fatalf("%d remote clusters configured before the rotation, want %d", len(f.node.RemoteClusters()), links)
	}
	passes, calls := f.im.trig.passes.Load(), f.requests.Total("")

	var last []byte
	for i := 1; i <= rotations; i++ {
		last = newTestCA(t, fmt.Sprintf("ca-%d", i))
		if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: last}); err != nil {
			t.Fatal(err)
		}
		if f.im.queue.Len() != 0 {
			t.Fatalf("rotation %d queued a full reconcile", i)
		}
	}
	want, err := pemutil.ParseCertificates(last, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		c, err := f.Kube.CoreV1().ConfigMaps(fxNS).Get(t.Context(), cm, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, rc := range rcs {
			got, err := pemutil.ParseCertificates([]byte(wiring.AliasCABundles(c.Data, c.Annotations)[rc.Spec.Alias]), pemutil.Limits{})
			if err != nil || len(got) == 0 || pemutil.Fingerprint(got[0]) != pemutil.Fingerprint(want[0]) {
				return false
			}
		}
		return true
	})
	f.waitQuiet(t) // the echoes of the CA path's writes have come back
	if n := f.im.trig.passes.Load() - passes; n != 0 {
		t.Errorf("%d full reconciles ran during %d CA updates of %d links, want none (their triggers are logged at debug level)", n, rotations, links)
	}
	if n := f.requests.Total("") - calls; n != 0 {
		t.Errorf("%d Elasticsearch requests during %d CA updates of %d links, want none", n, rotations, links)
	}
}

// waitQuiet waits until the importer's queues are empty and no full reconcile ran for a while.
func (f *fixture) waitQuiet(t *testing.T) {
	t.Helper()
	const quiet = time.Second // longer than a pass's first retry
	deadline := time.Now().Add(60 * time.Second)
	last, since := f.im.trig.passes.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := f.im.trig.passes.Load()
		busy := f.im.queue.Len() > 0 || f.im.ca.queue.Len() > 0 || f.im.trig.running.Load() > 0
		if n != last || busy {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
	t.Fatal("the importer did not settle within 60s")
}

// realisticWrites makes the fake API server's ConfigMap and Secret writes behave as a real
// one's where the echo detection depends on it: each write gets a new resourceVersion (the fake
// leaves it empty, so that every event would match every write), and its response comes after
// its watch event went out (as it can under load).
func realisticWrites(kc *fake.Clientset) {
	var rv atomic.Int64
	rv.Store(1000)
	for _, res := range []string{"configmaps", "secrets"} {
		for _, verb := range []string{"create", "update"} {
			kc.PrependReactor(verb, res, func(a k8stesting.Action) (bool, runtime.Object, error) {
				obj := a.(interface{ GetObject() runtime.Object }).GetObject().DeepCopyObject()
				m, ok := obj.(metav1.Object)
				if !ok {
					return false, nil, nil
				}
				gvr := a.GetResource()
				if verb == "update" {
					cur, err := kc.Tracker().Get(gvr, m.GetNamespace(), m.GetName())
					if err != nil {
						return true, nil, err
					}
					if c := cur.(metav1.Object).GetResourceVersion(); c != "" && m.GetResourceVersion() != c {
						return true, nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(), errors.New("the object has been modified"))
					}
				}
				m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
				var err error
				if verb == "create" {
					err = kc.Tracker().Create(gvr, obj, m.GetNamespace())
				} else {
					err = kc.Tracker().Update(gvr, obj, m.GetNamespace())
				}
				time.Sleep(20 * time.Millisecond) // the watch event goes out first
				return true, obj, err
			})
		}
	}
}
