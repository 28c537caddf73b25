package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakees"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakehalf"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// The fixture is environment east with a paired peer west, a local Elasticsearch search/ccs
// served by an in-process esim node, and RemoteClusters given per test.
const (
	fxAgentNS = fakehalf.AgentNamespace
	fxNS      = "search"
	fxES      = "ccs"
	fxPeer    = "west"
)

type fixture struct {
	im *Importer
	// Half is the fake cluster the importer runs on.
	*fakehalf.Half
	node   *esim.Node
	es     *elastic.Client
	outbox *recordingOutbox
	// requests counts the requests the Elasticsearch served by method and path.
	requests *testenv.Counts
	// faults are the failures the Elasticsearch answers with instead of serving (esim.Faults).
	faults *esim.Faults
}

// recordingOutbox keeps the last payload published per resource.
type recordingOutbox struct {
	mu   sync.Mutex
	sent map[string]proto.Message
}

func (o *recordingOutbox) Publish(_, resource string, p proto.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent[resource] = p
	return nil
}

func (o *recordingOutbox) Remove(_, resource string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.sent, resource)
	return nil
}

func (o *recordingOutbox) get(resource string) proto.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent[resource]
}

// oneES is the Clients of the fixture's only Elasticsearch.
type oneES struct{ c *elastic.Client }

func (o oneES) Client(_ context.Context, t elastic.Target) (*elastic.Client, error) {
	if t.Namespace != fxNS || t.Name != fxES {
		return nil, errors.New("no such Elasticsearch in this test")
	}
	return o.c, nil
}

// remoteCluster is a RemoteCluster of search/ccs from west under alias, with the finalizer.
func remoteCluster(alias string, model v1alpha1.SecurityModel) *v1alpha1.RemoteCluster {
	return &v1alpha1.RemoteCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindRemoteCluster},
		ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: alias, Finalizers: []string{v1alpha1.Finalizer}, CreationTimestamp: metav1.Now()},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: fxES}, Alias: alias, Peer: fxPeer,
			Export: v1alpha1.ExportReference{Namespace: "data", Name: "logs"}, Model: model},
	}
}

// elasticsearch is the ECK resource search/ccs.
func elasticsearch() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"namespace": fxNS, "name": fxES, "uid": "uid-ccs-1"},
		"spec":     map[string]any{"version": "9.3.2", "nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}},
	}}
}

func newFixture(t testing.TB, rcs ...*v1alpha1.RemoteCluster) *fixture {
	t.Helper()
	h := fakehalf.New(t, fakehalf.Config{Environment: "east", Peers: []string{fxPeer}, Objects: toObjects(rcs), Elasticsearch: []*unstructured.Unstructured{elasticsearch()}, Events: 1000})
	es := fakees.Start(t, esim.Config{Version: "9.3.2", ClusterName: fxES, NodeName: "ccs-0"})
	out := &recordingOutbox{sent: map[string]proto.Message{}}
	im, err := New(Config{Deps: h.Deps(oneES{es.Client}), Outbox: out, AgentNamespace: fxAgentNS})
	if err != nil {
		t.Fatal(err)
	}
	h.Start(t)
	return &fixture{im: im, Half: h, node: es.Node, es: es.Client, outbox: out, requests: es.Requests, faults: es.Faults}
}

// settingsPuts is how many PUT /_cluster/settings requests the Elasticsearch served.
func (f *fixture) settingsPuts() int { return f.requests.Get("PUT /_cluster/settings") }

// newAPIKeyLinksFixture is the fixture with links API-key RemoteClusters l-000, l-001, ... whose
// credentials (one key each, one transport CA for all) the peer sent, not yet applied.
func newAPIKeyLinksFixture(t testing.TB, links int) (*fixture, []*v1alpha1.RemoteCluster) {
	t.Helper()
	var rcs []*v1alpha1.RemoteCluster
	for i := range links {
		rcs = append(rcs, remoteCluster(fmt.Sprintf("l-%03d", i), v1alpha1.SecurityModelAPIKey))
	}
	f := newFixture(t, rcs...)
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == links })
	ca := newTestCA(t, "west-transport")
	for _, rc := range rcs {
		if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials(rc.Spec.Alias, "key-"+rc.Spec.Alias, ca)); err != nil {
			t.Fatalf("credentials of %s: %v", rc.Spec.Alias, err)
		}
	}
	return f, rcs
}

func toObjects(rcs []*v1alpha1.RemoteCluster) []runtime.Object {
	out := make([]runtime.Object, len(rcs))
	for i, rc := range rcs {
		out[i] = rc
	}
	return out
}

// reconcile runs one pass over search/ccs.
func (f *fixture) reconcile(t *testing.T) {
	t.Helper()
	if _, err := f.im.reconcile(t.Context(), types.NamespacedName{Namespace: fxNS, Name: fxES}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
}

// remoteCluster reads a RemoteCluster back.
func (f *fixture) remoteCluster(t *testing.T, name string) *v1alpha1.RemoteCluster {
	t.Helper()
	rc, err := f.CRDs.RemoteClusters().Get(t.Context(), fxNS, name)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// newAppliedFixture is the fixture with the API-key RemoteCluster logs connected and the peer's
// key-1 for it applied by one settled pass.
func newAppliedFixture(t *testing.T) *fixture {
	t.Helper()
	return newAppliedWithCA(t, newTestCA(t, "west-transport"))
}

// newAppliedWithCA is newAppliedFixture with ca as the peer's transport CA.
func newAppliedWithCA(t *testing.T, ca []byte) *fixture {
	t.Helper()
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", ca)); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	f.settle(t)
	return f
}

// storedES is search/ccs as the API server holds it.
func (f *fixture) storedES(t testing.TB) *unstructured.Unstructured {
	return f.Elasticsearch(t, fxNS, fxES)
}

// storedConfigMap is the ConfigMap name of search as the API server holds it (nil: none).
func (f *fixture) storedConfigMap(t testing.TB, name string) *corev1.ConfigMap {
	return f.ConfigMap(t, fxNS, name)
}

// sendKey delivers the peer's API-key credentials of alias: key id, transport CA west-transport.
func (f *fixture) sendKey(t testing.TB, alias, id string) {
	t.Helper()
	if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials(alias, id, newTestCA(t, "west-transport"))); err != nil {
		t.Fatal(err)
	}
}

// waitCache waits until the informer shows what ok accepts.
func waitCache(t testing.TB, ok func() bool) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "the cache to catch up", ok)
}

// certificateCredentials are what a peer sends with the certificate model.
func certificateCredentials(t *testing.T, alias string) *peerv1.Credentials {
	return &peerv1.Credentials{Link: &peerv1.Link{LocalNamespace: fxNS, LocalElasticsearch: fxES, Alias: alias},
		Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, CaBundle: testCA(t, true, time.Now().Add(time.Hour)),
		ProxyAddress: "203.0.113.7:9300", ServerName: "logs-es-transport.data.svc"}
}

// checkRefusal fails t unless err is a refusal with reason; with reason "", unless err is nil.
func checkRefusal(t testing.TB, err error, reason string) {
	t.Helper()
	var ref *peering.RefusalError
	switch {
	case reason == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case reason != "" && (!errors.As(err, &ref) || ref.Reason != reason):
		t.Fatalf("err = %v, want a refusal %s", err, reason)
	}
}
