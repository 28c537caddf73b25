package importer

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func newTestCA(t testing.TB, cn string) []byte {
	t.Helper()
	return testenv.CA(t, cn, time.Now().Add(-time.Minute), time.Time{}).PEM()
}

// testImporter is an Importer with its queues and maps, and no Kubernetes behind it.
func testImporter() *Importer {
	im := &Importer{
		cfg:       Config{Deps: halves.Deps{Now: time.Now}},
		log:       hclog.NewNullLogger(),
		queue:     workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName]()),
		answers:   map[link.ID]*received{},
		published: map[link.ID]string{},
		statuses:  map[link.ID]*peerv1.LinkStatus{},
	}
	im.ca.init()
	im.pods.init()
	return im
}

func creds(ca []byte, keyID string) *peerv1.Credentials {
	return &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: keyID, CaBundle: ca, ProxyAddress: "logs.example:9443"}
}

func TestCAOnlyChange(t *testing.T) {
	ca1, ca2 := []byte("ca-1"), []byte("ca-2")
	cert := creds(ca2, "k1")
	cert.Model = peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE
	for _, tc := range []struct {
		name       string
		prev, next *received
		want       bool
	}{
		{name: "first answer", prev: nil, next: &received{peer: "west", creds: creds(ca1, "k1")}, want: false},
		{name: "only the CA changed", prev: &received{peer: "west", creds: creds(ca1, "k1")}, next: &received{peer: "west", creds: creds(ca2, "k1")}, want: true},
		{name: "same credentials again", prev: &received{peer: "west", creds: creds(ca1, "k1")}, next: &received{peer: "west", creds: creds(ca1, "k1")}, want: false},
		{name: "CA and key changed", prev: &received{peer: "west", creds: creds(ca1, "k1")}, next: &received{peer: "west", creds: creds(ca2, "k2")}, want: false},
		{name: "another peer", prev: &received{peer: "west", creds: creds(ca1, "k1")}, next: &received{peer: "north", creds: creds(ca2, "k1")}, want: false},
		{name: "after a refusal", prev: &received{peer: "west", refusal: &peerv1.Refusal{}}, next: &received{peer: "west", creds: creds(ca2, "k1")}, want: false},
		{name: "after a removal", prev: &received{peer: "west", removed: true}, next: &received{peer: "west", creds: creds(ca2, "k1")}, want: false},
		{name: "certificate model", prev: &received{peer: "west", creds: func() *peerv1.Credentials { c := creds(ca1, "k1"); c.Model = cert.Model; return c }()}, next: &received{peer: "west", creds: cert}, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := caOnlyChange(tc.prev, tc.next); got != tc.want {
				t.Fatalf("caOnlyChange = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStoreRoutesCAOnlyChangesToTheCAPath(t *testing.T) {
	im := testImporter()
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	key := types.NamespacedName{Namespace: "apps", Name: "ccs"}
	im.store(id, &received{peer: "west", creds: creds(newTestCA(t, "a"), "k1")})
	if im.queue.Len() != 1 || im.ca.queue.Len() != 0 {
		t.Fatalf("a first answer goes to the full reconcile: queue %d, CA path %d", im.queue.Len(), im.ca.queue.Len())
	}
	got, _ := im.queue.Get()
	im.queue.Done(got)
	im.store(id, &received{peer: "west", creds: creds(newTestCA(t, "b"), "k1")})
	if im.queue.Len() != 0 || im.ca.queue.Len() != 1 {
		t.Fatalf("a CA-only change goes to the CA path only: queue %d, CA path %d", im.queue.Len(), im.ca.queue.Len())
	}
	if k, _ := im.ca.queue.Get(); k != key {
		t.Fatalf("CA path key %v, want %v", k, key)
	}
}

func TestCAOnlyDataMergesEveryChangedAliasOnce(t *testing.T) {
	im := testImporter()
	old, newA, newB, other := newTestCA(t, "old"), newTestCA(t, "new-a"), newTestCA(t, "new-b"), newTestCA(t, "other")
	key := types.NamespacedName{Namespace: "apps", Name: "ccs"}
	data, index := caConfigMapData(map[string]string{"a": string(old), "b": string(old), "c": string(other), "held": string(old)})
	cur := &corev1.ConfigMap{Data: data, ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{wiring.AnnotationCAEntries: index}}}
	im.answers[link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "a"}] = &received{peer: "west", creds: creds(newA, "k")}
	im.answers[link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "b"}] = &received{peer: "west", creds: creds(newB, "k")}
	im.answers[link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "c"}] = &received{peer: "west", creds: creds(other, "k")}
	out, changed, bundles, err := im.caOnlyData(key, cur)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(changed, ",") != "a,b" {
		t.Fatalf("changed %v, want a and b", changed)
	}
	for alias, want := range map[string][][]byte{"a": {newA, old}, "b": {newB, old}, "c": {other}, "held": {old}} {
		if stored := wiring.AliasCABundles(out.Data, out.Annotations)[alias]; stored != bundles[alias] {
			t.Fatalf("alias %s: the ConfigMap holds another bundle than the one returned", alias)
		}
		certs, _ := pemutil.ParseCertificates([]byte(bundles[alias]), pemutil.Limits{})
		if len(certs) != len(want) {
			t.Fatalf("alias %s holds %d CAs, want %d", alias, len(certs), len(want))
		}
		first, _ := pemutil.ParseCertificates(want[0], pemutil.Limits{})
		if pemutil.Fingerprint(certs[0]) != pemutil.Fingerprint(first[0]) {
			t.Fatalf("alias %s: the newest CA must come first", alias)
		}
	}
	all, _ := pemutil.ParseCertificates([]byte(out.Data[wiring.CAFileKey]), pemutil.Limits{})
	if len(all) != 4 { // old, new-a, new-b, other
		t.Fatalf("ca.crt holds %d CAs, want 4", len(all))
	}
	if len(out.Data) != 5 { // ca.crt, old, new-a+old, new-b+old, other
		t.Fatalf("the ConfigMap holds %d keys, want 5: %v", len(out.Data), slices.Collect(maps.Keys(out.Data)))
	}
	if _, again, _, _ := im.caOnlyData(key, out); len(again) != 0 {
		t.Fatalf("applying the same answers again changes %v", again)
	}
}

func TestLatestCAKeepsTheNewestBundle(t *testing.T) {
	im := testImporter()
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "a"}
	planned := &received{peer: "west", creds: creds([]byte("old"), "k1")}
	p := &linkPlan{id: id, answer: planned}
	im.answers[id] = planned
	if got := string(im.latestCA(p)); got != "old" {
		t.Fatalf("latestCA = %q, want the planned bundle", got)
	}
	im.answers[id] = &received{peer: "west", creds: creds([]byte("new"), "k1")}
	if got := string(im.latestCA(p)); got != "new" {
		t.Fatalf("latestCA = %q after a CA-only change, want the newest bundle", got)
	}
	im.answers[id] = &received{peer: "west", creds: creds([]byte("newer"), "k2")}
	if got := string(im.latestCA(p)); got != "old" {
		t.Fatalf("latestCA = %q after a key change, want the planned bundle (the next pass takes the rest)", got)
	}
}

func TestOwnWritesStandInForAStaleCache(t *testing.T) {
	cm := func(rv string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "ccs-ecklink-remote-ca", ResourceVersion: rv}}
	}
	withData := func(c *corev1.ConfigMap) *corev1.ConfigMap {
		c.Data = map[string]string{"ca.crt": "someone else's"}
		return c
	}
	for _, tc := range []struct {
		name     string
		wrote    *corev1.ConfigMap
		prevRV   string
		cached   *corev1.ConfigMap
		wantRV   string
		wantEcho bool
	}{
		{name: "nothing written", cached: cm("5"), wantRV: "5"},
		{name: "cache behind our update", wrote: cm("6"), prevRV: "5", cached: withData(cm("5")), wantRV: "6"},
		{name: "cache caught up", wrote: cm("6"), prevRV: "5", cached: cm("6"), wantRV: "6", wantEcho: true},
		{name: "someone wrote after us", wrote: cm("6"), prevRV: "5", cached: withData(cm("7")), wantRV: "7"},
		{name: "created, not cached yet", wrote: cm("1"), prevRV: "", cached: nil, wantRV: "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w ownWrites
			if tc.wrote != nil {
				w.note(kindConfigMap, tc.wrote, tc.prevRV)
			}
			var cached metav1.Object
			if tc.cached != nil {
				cached = tc.cached
			}
			got, ok := w.fresher(kindConfigMap, "apps", "ccs-ecklink-remote-ca", cached, tc.cached != nil)
			if !ok || got.GetResourceVersion() != tc.wantRV {
				t.Fatalf("fresher = %v (ok %v), want resourceVersion %s", got, ok, tc.wantRV)
			}
			if tc.cached != nil && w.echo(kindConfigMap, tc.cached) != tc.wantEcho {
				t.Fatalf("echo = %v, want %v", !tc.wantEcho, tc.wantEcho)
			}
		})
	}
}

// TestEchoOfEarlierAndInFlightWrites: the watch event of a write is an echo when it arrives
// after the next write was noted, and when it arrives before the write's own response; a
// change by someone else is not.
func TestEchoOfEarlierAndInFlightWrites(t *testing.T) {
	cm := func(rv, ca string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "ccs-ecklink-remote-ca", ResourceVersion: rv}, Data: map[string]string{"ca.crt": ca}}
	}
	var w ownWrites
	w.note(kindConfigMap, cm("6", "ca-1"), "5")
	w.note(kindConfigMap, cm("7", "ca-2"), "6")
	if !w.echo(kindConfigMap, cm("6", "ca-1")) {
		t.Error("the event of the write before the last one is not taken for an echo")
	}
	sending := cm("7", "ca-3")
	w.begin(kindConfigMap, sending)
	if !w.echo(kindConfigMap, cm("8", "ca-3")) {
		t.Error("the event of a write still waiting for its response is not taken for an echo")
	}
	w.done(kindConfigMap, sending)
	if w.echo(kindConfigMap, cm("9", "someone else's")) {
		t.Error("someone else's change is taken for an echo")
	}
}

// countingQueue counts what is added to a queue.
type countingQueue struct {
	workqueue.TypedInterface[types.NamespacedName]
	adds int
}

func (q *countingQueue) Add(k types.NamespacedName) { q.adds++; q.TypedInterface.Add(k) }

// TestExportCAQueuesTheCAPathOnceAllLinksAreStored: a renewed shared bundle updates every link
// naming it, then queues their Elasticsearch for the CA path once, so a worker that takes it at
// once merges them all in one pass (one ConfigMap write), not the first link in a pass of its
// own and the rest in another.
func TestExportCAQueuesTheCAPathOnceAllLinksAreStored(t *testing.T) {
	im := testImporter()
	q := &countingQueue{TypedInterface: im.ca.queue}
	im.ca.queue = q
	const ref = "0123456789abcdef0123456789abcdef"
	old, renewed := newTestCA(t, "old"), newTestCA(t, "renewed")
	im.shared.bundles = map[string]map[string][]byte{"west": {ref: old}}
	var ids []link.ID
	for i := range 20 {
		id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs-" + string(rune('a'+i))}
		c := creds(old, "k1")
		c.CaRef = ref
		im.answers[id] = &received{peer: "west", creds: c}
		ids = append(ids, id)
	}
	if err := im.OnExportCA("west", ref, &peerv1.ExportCA{CaBundle: renewed}); err != nil {
		t.Fatal(err)
	}
	if q.adds != 1 {
		t.Errorf("the CA path was handed the Elasticsearch %d times for one renewal of %d links, want once", q.adds, len(ids))
	}
	for _, id := range ids {
		if string(im.answers[id].creds.GetCaBundle()) != string(renewed) {
			t.Errorf("%s holds the old bundle", id.Alias)
		}
	}
	if im.queue.Len() != 0 {
		t.Errorf("a CA-only change queued the full reconcile (%d)", im.queue.Len())
	}
}
