package exporter

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakees"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakehalf"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// The answer fixture is environment west exporting data/logs (API-key model, spec.proxyAddress)
// to its paired peers east and north, with the exported Elasticsearch served by an esim node
// behind esim.Faults, a real informer cache over fake clients, and a recording outbox.
const (
	axNS, axExport, axES = "data", "logs", "logs"
	axProxy              = "logs.west.example:9443"
)

type answerFixture struct {
	e *Exporter
	// Half is the fake cluster the exporter runs on.
	*fakehalf.Half
	node   *esim.Node
	out    *recordingOutbox
	faults *esim.Faults
	// calls counts the requests the Elasticsearch served, by "METHOD path".
	calls *testenv.Counts
	// offset moves the clock of the exporter and the Elasticsearch (key rotation).
	offset atomic.Int64
	ca     []byte // the exported Elasticsearch's transport CA
}

// axExportObject is data/logs granting peers, with the finalizer.
func axExportObject(peers ...string) *v1alpha1.ClusterExport {
	return &v1alpha1.ClusterExport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "ClusterExport"},
		ObjectMeta: metav1.ObjectMeta{Namespace: axNS, Name: axExport, Generation: 1, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: axES}, Peers: peers, ProxyAddress: axProxy,
			Access: &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}}},
	}
}

// axElasticsearch is the exported Elasticsearch data/logs.
func axElasticsearch(serverEnabled bool) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"namespace": axNS, "name": axES, "uid": "uid-logs-1"},
		"spec": map[string]any{"version": "9.3.2", "remoteClusterServer": map[string]any{"enabled": serverEnabled},
			"nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}},
	}}
}

func transportCASecret(ca []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: axNS, Name: eck.TransportCertsPublic(axES), Labels: map[string]string{eck.ClusterNameLabel: axES}},
		Data: map[string][]byte{"ca.crt": ca}}
}

// newAnswerFixture builds the fixture; exp nil exports nothing, es nil has no Elasticsearch.
func newAnswerFixture(t *testing.T, exp *v1alpha1.ClusterExport, es *unstructured.Unstructured) *answerFixture {
	t.Helper()
	f := &answerFixture{out: newRecordingOutbox(), ca: longLivedCA(t, "transport-ca")}
	cfg := fakehalf.Config{Environment: "west", Peers: []string{"east", "north"}, Kube: []runtime.Object{transportCASecret(f.ca)}, Now: f.now}
	if exp != nil {
		cfg.Objects = append(cfg.Objects, exp)
	}
	if es != nil {
		cfg.Elasticsearch = append(cfg.Elasticsearch, es)
	}
	f.Half = fakehalf.New(t, cfg)
	node := fakees.Start(t, esim.Config{Version: "9.3.2", ClusterName: axES, NodeName: "logs-0", Now: f.now})
	f.node, f.faults, f.calls = node.Node, node.Faults, node.Requests
	var err error
	if f.e, err = New(Config{Deps: f.Deps(esimClients{node.Client}), Outbox: f.out}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.e.queue.ShutDown)
	f.Start(t)
	return f
}

// longLivedCA is a transport CA valid for longer than any key lifetime the tests move the
// clock across.
func longLivedCA(t *testing.T, cn string) []byte {
	t.Helper()
	return testenv.CA(t, cn, time.Time{}, time.Now().Add(3*365*24*time.Hour)).PEM()
}

// now is the clock of the exporter and of the exported Elasticsearch.
func (f *answerFixture) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

var axLink = link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}

// importLink receives peer's import request for id and answers it (one link pass).
func (f *answerFixture) importLink(t *testing.T, peer string, id link.ID) {
	t.Helper()
	if err := f.e.OnImport(peer, &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: axNS, ExportName: axExport, ElasticsearchVersion: "9.3.2"}); err != nil {
		t.Fatalf("import request of %s refused on receipt: %v", id, err)
	}
	f.pass(t, peer, id)
}

// pass runs one link pass and fails the test on an error.
func (f *answerFixture) pass(t *testing.T, peer string, id link.ID) time.Duration {
	t.Helper()
	requeue, err := f.e.reconcileLink(t.Context(), peer, id)
	if err != nil {
		t.Fatalf("link pass of %s: %v", id, err)
	}
	return requeue
}

// held is what the outbox holds for peer's resource.
func (f *answerFixture) held(peer, resource string) proto.Message {
	f.out.mu.Lock()
	defer f.out.mu.Unlock()
	return f.out.held[peer+"/"+resource]
}

func (f *answerFixture) credentials(peer string, id link.ID) *peerv1.Credentials {
	c, _ := f.held(peer, link.Resource(link.KindCredentials, id)).(*peerv1.Credentials)
	return c
}

func (f *answerFixture) refusalOf(peer string, id link.ID) *peerv1.Refusal {
	r, _ := f.held(peer, link.Resource(link.KindCredentials, id)).(*peerv1.Refusal)
	return r
}

// liveKeys are the ids of the node's keys that are not invalidated, for peer's link id.
func (f *answerFixture) liveKeys(peer string, id link.ID) []string {
	var out []string
	for _, k := range f.node.APIKeys() {
		if k.Invalidated || k.Name != link.KeyName(peer, id) {
			continue
		}
		out = append(out, k.ID)
	}
	return out
}

// setTransportCA renews the exported Elasticsearch's transport CA (ECK's Secret) and waits until
// the informer cache holds it.
func (f *answerFixture) setTransportCA(t *testing.T, ca []byte) {
	t.Helper()
	if _, err := f.Kube.CoreV1().Secrets(axNS).Update(t.Context(), transportCASecret(ca), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s, ok := f.e.cfg.Cache.ECKSecret(axNS, eck.TransportCertsPublic(axES))
		return ok && string(s.Data["ca.crt"]) == string(ca)
	})
	f.ca = ca
}

// configMap is the ConfigMap name of the exported Elasticsearch's namespace (nil: none).
func (f *answerFixture) configMap(t *testing.T, name string) *corev1.ConfigMap {
	return f.ConfigMap(t, axNS, name)
}

// elasticsearch is the exported Elasticsearch as stored.
func (f *answerFixture) elasticsearch(t *testing.T) *unstructured.Unstructured {
	return f.Elasticsearch(t, axNS, axES)
}

// waitFor waits until the informer shows what ok accepts.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the cache to catch up", ok)
}

// TestAnswerIssuesOneKeyPerLink: a granted import is answered with credentials holding a new
// cross-cluster key of the export's access (its metadata naming the environment, peer, link and
// export), the exported Elasticsearch's transport CA, the export's proxy address, ECK's server
// name, the key's expiry and the cluster's version. A second pass with nothing changed makes no
// key and writes nothing to Elasticsearch, and sends the same key again.
func TestAnswerIssuesOneKeyPerLink(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	f.importLink(t, "east", axLink)

	c := f.credentials("east", axLink)
	if c == nil {
		t.Fatalf("no credentials sent; outbox holds %v", f.held("east", link.Resource(link.KindCredentials, axLink)))
	}
	keys := f.liveKeys("east", axLink)
	if len(keys) != 1 || c.GetApiKeyId() != keys[0] {
		t.Fatalf("credentials name key %q, live keys of the link %v: want exactly the one sent", c.GetApiKeyId(), keys)
	}
	k, _ := f.node.APIKey(keys[0])
	if got := metaAccess(k); got != "logs-*" {
		t.Errorf("key access %q, want the export's logs-*", got)
	}
	got := parseKeyMetadata(k.Metadata)
	if want := (keyMetadata{ManagedBy: "ecklink", Environment: "west", Peer: "east", Link: axLink.String(), Export: "data/logs", AccessHash: got.AccessHash}); got != want {
		t.Errorf("key metadata %+v, want %+v", got, want)
	}
	if secret, ok := f.node.APIKeySecret(keys[0]); !ok || c.GetApiKeyEncoded() != base64.StdEncoding.EncodeToString([]byte(keys[0]+":"+secret)) {
		t.Errorf("api_key_encoded is not the key's id:secret")
	}
	switch {
	case c.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_API_KEY:
		t.Errorf("model %s", c.GetModel())
	case string(c.GetCaBundle()) != string(f.ca):
		t.Errorf("CA bundle is not the exported Elasticsearch's transport CA")
	case c.GetProxyAddress() != axProxy || c.GetServerName() != "logs-es-remote-cluster.data.svc":
		t.Errorf("address %s server name %s", c.GetProxyAddress(), c.GetServerName())
	case c.GetApiKeyExpiration() == nil || c.GetApiKeyExpiration().AsTime().Before(time.Now().Add(v1alpha1.DefaultKeyLifetime-time.Hour)):
		t.Errorf("expiration %v, want the default lifetime", c.GetApiKeyExpiration())
	case c.GetElasticsearchVersion() != "9.3.2":
		t.Errorf("version %q", c.GetElasticsearchVersion())
	}

	writes := f.calls.Total("POST /_security/cross_cluster") + f.calls.Total("PUT /_security") + f.calls.Total("DELETE")
	f.pass(t, "east", axLink)
	if again := f.credentials("east", axLink); again.GetApiKeyId() != keys[0] || again.GetApiKeyEncoded() != c.GetApiKeyEncoded() {
		t.Errorf("second pass sent key %s, want %s again with its value", again.GetApiKeyId(), keys[0])
	}
	if n := f.calls.Total("POST /_security/cross_cluster") + f.calls.Total("PUT /_security") + f.calls.Total("DELETE"); n != writes {
		t.Errorf("a pass with nothing changed made %d key writes", n-writes)
	}
	if got := f.liveKeys("east", axLink); len(got) != 1 {
		t.Errorf("live keys %v after a second pass, want one", got)
	}
}

// TestAnswerRefusals: an import the export cannot serve is answered with a Refusal naming the
// reason, and no key is made; a link that held a key loses it when it comes to be refused.
func TestAnswerRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exp     *v1alpha1.ClusterExport
		es      *unstructured.Unstructured
		peer    string
		reason  string
		mention string
	}{
		{name: "export does not name the peer", exp: axExportObject("north"), es: axElasticsearch(true), peer: "east",
			reason: v1alpha1.ReasonPeerNotGranted, mention: "no ClusterExport data/logs grants access to environment east"},
		{name: "no such export", es: axElasticsearch(true), peer: "east",
			reason: v1alpha1.ReasonPeerNotGranted, mention: "no ClusterExport data/logs grants access to environment east"},
		{name: "exported Elasticsearch missing", exp: axExportObject("east"), peer: "east",
			reason: v1alpha1.ReasonElasticsearchNotFound, mention: "not available"},
		{name: "remote cluster server disabled", exp: axExportObject("east"), es: axElasticsearch(false), peer: "east",
			reason: v1alpha1.ReasonServerDisabled, mention: "remote cluster server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, tc.exp, tc.es)
			// Held (as after a restart with the grant in place), then judged by the link pass.
			f.e.mu.Lock()
			st := f.e.stateLocked(tc.peer, axLink)
			st.req = &peerv1.ImportRequest{Link: axLink.Proto(), ExportNamespace: axNS, ExportName: axExport}
			f.e.mu.Unlock()
			f.pass(t, tc.peer, axLink)
			r := f.refusalOf(tc.peer, axLink)
			if r == nil || r.GetReason() != tc.reason || !strings.Contains(r.GetMessage(), tc.mention) {
				t.Fatalf("answer %v, want a Refusal %s mentioning %q", f.held(tc.peer, link.Resource(link.KindCredentials, axLink)), tc.reason, tc.mention)
			}
			if n := len(f.node.APIKeys()); n != 0 {
				t.Errorf("%d keys made for a refused link", n)
			}
		})
	}

	t.Run("grant withdrawn: the key goes", func(t *testing.T) {
		f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
		f.importLink(t, "east", axLink)
		if len(f.liveKeys("east", axLink)) != 1 {
			t.Fatal("no key made for the granted link")
		}
		exp, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
		if err != nil {
			t.Fatal(err)
		}
		exp.Spec.Peers = []string{"north"}
		if _, err := f.CRDs.ClusterExports().Update(t.Context(), exp); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			x, ok := f.e.cfg.Cache.ClusterExport(axNS, axExport)
			return ok && !x.Spec.Serves("east", axLink.Namespace, axLink.Elasticsearch)
		})
		f.pass(t, "east", axLink)
		if r := f.refusalOf("east", axLink); r == nil || r.GetReason() != v1alpha1.ReasonPeerNotGranted {
			t.Fatalf("answer after the grant went: %v, want PeerNotGranted", f.held("east", link.Resource(link.KindCredentials, axLink)))
		}
		if live := f.liveKeys("east", axLink); len(live) != 0 {
			t.Errorf("keys %v still live after the grant went", live)
		}
		select {
		case ev := <-f.Events.Events:
			if !strings.Contains(ev, "PeerNotGranted") {
				t.Errorf("event %q, want PeerNotGranted", ev)
			}
		default:
			t.Error("no Event on the export for the refused peer")
		}
	})
}

// TestEnsureKeyRotatesBeforeExpiry: once the newest key is within the export's rotateBefore of
// its expiry, a new key is made and sent; the old one stays until the peer reports it is
// connected with the new one, then it is invalidated.
func TestEnsureKeyRotatesBeforeExpiry(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	f.importLink(t, "east", axLink)
	old := f.credentials("east", axLink).GetApiKeyId()
	if err := f.e.OnLinkStatus("east", &peerv1.LinkStatus{Link: axLink.Proto(), AppliedApiKeyId: old, WrittenApiKeyId: old, Connected: true}); err != nil {
		t.Fatal(err)
	}
	lifetime, rotateBefore := axExportObject("east").Spec.KeyLifetime()
	// Not due yet: the same key.
	f.offset.Store(int64(lifetime - rotateBefore - time.Hour))
	f.pass(t, "east", axLink)
	if got := f.credentials("east", axLink).GetApiKeyId(); got != old {
		t.Fatalf("key %s sent before the rotation is due, want %s", got, old)
	}
	// Due: a new key, the old one kept while the peer uses it.
	f.offset.Store(int64(lifetime - rotateBefore + time.Hour))
	f.pass(t, "east", axLink)
	fresh := f.credentials("east", axLink).GetApiKeyId()
	if fresh == old || fresh == "" {
		t.Fatalf("no new key once the rotation is due (sent %q)", fresh)
	}
	if live := f.liveKeys("east", axLink); len(live) != 2 {
		t.Fatalf("live keys %v while the peer still uses the old key, want both", live)
	}
	if err := f.e.OnLinkStatus("east", &peerv1.LinkStatus{Link: axLink.Proto(), AppliedApiKeyId: fresh, WrittenApiKeyId: fresh, Connected: true}); err != nil {
		t.Fatal(err)
	}
	f.pass(t, "east", axLink)
	if live := f.liveKeys("east", axLink); len(live) != 1 || live[0] != fresh {
		t.Fatalf("live keys %v after the peer connected with %s, want only it", live, fresh)
	}
}

// TestEnsureKeyElasticsearchErrors: when the exported Elasticsearch fails a step of the key's
// life, the link pass fails (to be retried with backoff), nothing is sent over the last answer,
// and no key is left half made; the next pass after the failure clears finishes the step.
func TestEnsureKeyElasticsearchErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before runs before the failing pass (the first answer is sent already).
		before func(t *testing.T, f *answerFixture)
		fault  esim.Fault
		// fresh: the pass after the failure makes a new key.
		fresh bool
	}{
		{name: "list keys fails", fault: esim.Fault{Method: "POST", Prefix: "/_security/_query/api_key", Status: 503, ErrType: "unavailable_shards_exception"}},
		{name: "create fails on rotation", fresh: true,
			before: func(t *testing.T, f *answerFixture) {
				lifetime, rotateBefore := axExportObject("east").Spec.KeyLifetime()
				f.offset.Store(int64(lifetime - rotateBefore + time.Hour))
			},
			fault: esim.Fault{Method: "POST", Prefix: "/_security/cross_cluster/api_key", Status: 500, ErrType: "exception"}},
		{name: "update of the access fails",
			before: func(t *testing.T, f *answerFixture) {
				exp, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
				if err != nil {
					t.Fatal(err)
				}
				exp.Spec.Access.Search[0].Names = []string{"audit-*"}
				if _, err := f.CRDs.ClusterExports().Update(t.Context(), exp); err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool {
					x, _ := f.e.cfg.Cache.ClusterExport(axNS, axExport)
					return x != nil && x.Spec.Access.Search[0].Names[0] == "audit-*"
				})
			},
			fault: esim.Fault{Method: "PUT", Prefix: "/_security/cross_cluster/api_key/", Status: 403, ErrType: "security_exception"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
			f.importLink(t, "east", axLink)
			first := proto.Clone(f.credentials("east", axLink)).(*peerv1.Credentials)
			if tc.before != nil {
				tc.before(t, f)
			}
			keysBefore := len(f.node.APIKeys())
			f.faults.Set(tc.fault)
			if _, err := f.e.reconcileLink(t.Context(), "east", axLink); err == nil {
				t.Fatal("the link pass succeeded while Elasticsearch failed")
			}
			if f.faults.Count() == 0 {
				t.Fatal("the failing call was not made")
			}
			if got := f.credentials("east", axLink); !proto.Equal(got, first) {
				t.Errorf("credentials sent over the last answer during the failure: %v", got)
			}
			if n := len(f.node.APIKeys()); n != keysBefore {
				t.Errorf("%d keys after the failed pass, want %d", n, keysBefore)
			}
			f.faults.Set()
			f.pass(t, "east", axLink)
			got := f.credentials("east", axLink)
			if (got.GetApiKeyId() != first.GetApiKeyId()) != tc.fresh {
				t.Errorf("after recovery key %s (first %s), want a new key: %v", got.GetApiKeyId(), first.GetApiKeyId(), tc.fresh)
			}
			if tc.name == "update of the access fails" {
				k, _ := f.node.APIKey(got.GetApiKeyId())
				if metaAccess(k) != "audit-*" {
					t.Errorf("after recovery the key's access is %q, want audit-*", metaAccess(k))
				}
			}
		})
	}

	t.Run("Elasticsearch unreachable", func(t *testing.T) {
		f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
		f.importLink(t, "east", axLink)
		first := f.credentials("east", axLink)
		good := f.e.cfg.Elastic
		f.e.cfg.Elastic = noClients{}
		if _, err := f.e.reconcileLink(t.Context(), "east", axLink); err == nil || !strings.Contains(err.Error(), "failed to reach") {
			t.Fatalf("pass with Elasticsearch unreachable: %v, want failed to reach", err)
		}
		if got := f.credentials("east", axLink); got != first {
			t.Error("credentials replaced while Elasticsearch was unreachable")
		}
		f.e.cfg.Elastic = good
		f.pass(t, "east", axLink)
		if got := f.credentials("east", axLink); got.GetApiKeyId() != first.GetApiKeyId() {
			t.Errorf("after recovery key %s, want %s kept", got.GetApiKeyId(), first.GetApiKeyId())
		}
	})
}

// TestExportCAPerPeer: a peer that announced export-ca gets the transport CA once per exported
// Elasticsearch (exportca/<id>), named by each link's credentials in ca_ref; a renewed CA is one
// ExportCA update for all its links there, without a call to Elasticsearch. A peer without the
// capability gets the CA inline in each link's credentials, and the renewed CA the same way.
func TestExportCAPerPeer(t *testing.T) {
	second := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs-2"}
	ref := link.ExportCAID(axNS, axES)
	for _, tc := range []struct {
		name  string
		caps  []string
		share bool
	}{
		{name: "export-ca", caps: []string{peering.CapabilityExportCA}, share: true},
		{name: "0.1.0 peer", caps: nil, share: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
			f.e.PeerConnected("east", tc.caps)
			f.importLink(t, "east", axLink)
			f.importLink(t, "east", second)
			for _, id := range []link.ID{axLink, second} {
				c := f.credentials("east", id)
				if tc.share && (c.GetCaRef() != ref || len(c.GetCaBundle()) != 0) {
					t.Errorf("%s: ca_ref %q with %d bytes inline, want %s and no bundle", id.Alias, c.GetCaRef(), len(c.GetCaBundle()), ref)
				}
				if !tc.share && (c.GetCaRef() != "" || string(c.GetCaBundle()) != string(f.ca)) {
					t.Errorf("%s: ca_ref %q, want the CA inline", id.Alias, c.GetCaRef())
				}
			}
			shared, _ := f.held("east", link.ExportCAResource(ref)).(*peerv1.ExportCA)
			if tc.share != (shared != nil) || shared != nil && string(shared.GetCaBundle()) != string(f.ca) {
				t.Fatalf("ExportCA held: %v, want one with the transport CA: %v", shared, tc.share)
			}

			renewed := longLivedCA(t, "renewed-transport-ca")
			f.setTransportCA(t, renewed)
			calls := f.calls.Total("")
			if tc.share {
				if _, err := f.e.republishExportCA("east", axNS, axES); err != nil {
					t.Fatal(err)
				}
				if got, _ := f.held("east", link.ExportCAResource(ref)).(*peerv1.ExportCA); got == nil || !strings.Contains(string(got.GetCaBundle()), strings.TrimSpace(string(renewed))) {
					t.Error("the shared bundle does not hold the renewed CA")
				}
			} else {
				for _, id := range []link.ID{axLink, second} {
					if _, err := f.e.republishCA(t.Context(), "east", id); err != nil {
						t.Fatal(err)
					}
					if c := f.credentials("east", id); !strings.Contains(string(c.GetCaBundle()), strings.TrimSpace(string(renewed))) {
						t.Errorf("%s: credentials do not hold the renewed CA inline", id.Alias)
					}
				}
			}
			if n := f.calls.Total("") - calls; n != 0 {
				t.Errorf("%d Elasticsearch calls for a CA update, want none", n)
			}
			for _, id := range []link.ID{axLink, second} {
				if c := f.credentials("east", id); c.GetApiKeyId() == "" || len(f.liveKeys("east", id)) != 1 {
					t.Errorf("%s: the CA update changed the key (%q)", id.Alias, c.GetApiKeyId())
				}
			}
		})
	}
}

// TestInvalidationOnRemoval: the keys of a link go with its import request, with the peering,
// and with the export (its finalizer); each time only the keys concerned.
func TestInvalidationOnRemoval(t *testing.T) {
	other := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "other"}
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, f *answerFixture)
		// gone: the links whose keys must be invalidated; the others must stay.
		gone map[string]bool // "peer/alias"
	}{
		{name: "import removed", gone: map[string]bool{"east/west-logs": true},
			remove: func(t *testing.T, f *answerFixture) {
				f.e.OnImportRemoved("east", axLink)
				f.pass(t, "east", axLink)
			}},
		{name: "peer gone", gone: map[string]bool{"east/west-logs": true, "east/other": true},
			remove: func(t *testing.T, f *answerFixture) {
				f.e.PeerGone("east")
				f.pass(t, "east", axLink)
				f.pass(t, "east", other)
			}},
		{name: "export deleted", gone: map[string]bool{"east/west-logs": true, "east/other": true, "north/west-logs": true},
			remove: func(t *testing.T, f *answerFixture) {
				exp, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.e.finalizeExport(t.Context(), exp); err != nil {
					t.Fatal(err)
				}
				after, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
				if err != nil {
					t.Fatal(err)
				}
				if hasFinalizer(after) {
					t.Error("the export keeps its finalizer after its keys went")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, axExportObject("east", "north"), axElasticsearch(true))
			f.importLink(t, "east", axLink)
			f.importLink(t, "east", other)
			f.importLink(t, "north", axLink)
			keys := map[string][]string{}
			for _, pl := range []struct {
				peer string
				id   link.ID
			}{{"east", axLink}, {"east", other}, {"north", axLink}} {
				keys[pl.peer+"/"+pl.id.Alias] = f.liveKeys(pl.peer, pl.id)
				if len(keys[pl.peer+"/"+pl.id.Alias]) != 1 {
					t.Fatalf("%s/%s: live keys %v, want one", pl.peer, pl.id.Alias, keys[pl.peer+"/"+pl.id.Alias])
				}
			}
			tc.remove(t, f)
			live := map[string]bool{}
			for _, k := range f.node.APIKeys() {
				if !k.Invalidated {
					live[k.ID] = true
				}
			}
			for l, ids := range keys {
				if live[ids[0]] == tc.gone[l] {
					t.Errorf("%s: key live %v, want %v", l, live[ids[0]], !tc.gone[l])
				}
			}
			if tc.gone["east/west-logs"] && tc.name != "export deleted" {
				if m := f.held("east", link.Resource(link.KindCredentials, axLink)); m != nil {
					t.Errorf("credentials of the removed link still held for the peer: %v", m)
				}
				f.e.mu.Lock()
				_, kept := f.e.links["east"][axLink]
				f.e.mu.Unlock()
				if kept {
					t.Error("the removed link is still held")
				}
			}
		})
	}
}

// TestKeyMadeBeforeARestart: the secret of a key lives in memory only. After a restart the
// newest key of a link is sent again only when the peer says it holds it (without its value);
// before the peer's status the pass waits (errRetry, not a failure); a key the peer never got is
// invalidated and replaced by a new one, sent with its value.
func TestKeyMadeBeforeARestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		// status is the peer's link status after the restart; applied "" : none yet, "made":
		// the key made before the restart.
		applied   string
		noStatus  bool
		wantWait  bool
		wantFresh bool
	}{
		{name: "no status yet", noStatus: true, wantWait: true},
		{name: "peer holds the key", applied: "made"},
		{name: "peer never got the key", applied: "an-older-key", wantFresh: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
			f.importLink(t, "east", axLink)
			made := f.credentials("east", axLink).GetApiKeyId()
			// The restart: the exporter's memory is gone, the key in Elasticsearch is not.
			f.e.mu.Lock()
			f.e.encoded = map[string]elastic.Secret{}
			f.e.links = map[string]map[link.ID]*linkState{}
			f.e.mu.Unlock()
			if err := f.e.OnImport("east", &peerv1.ImportRequest{Link: axLink.Proto(), ExportNamespace: axNS, ExportName: axExport}); err != nil {
				t.Fatal(err)
			}
			if !tc.noStatus {
				applied := tc.applied
				if applied == "made" {
					applied = made
				}
				if err := f.e.OnLinkStatus("east", &peerv1.LinkStatus{Link: axLink.Proto(), AppliedApiKeyId: applied, WrittenApiKeyId: applied, Connected: true}); err != nil {
					t.Fatal(err)
				}
			}
			before := proto.Clone(f.credentials("east", axLink))
			_, err := f.e.reconcileLink(t.Context(), "east", axLink)
			if tc.wantWait {
				if !errors.Is(err, errRetry) {
					t.Fatalf("pass before the peer's status: %v, want a wait (errRetry)", err)
				}
				if got := f.credentials("east", axLink); !proto.Equal(got, before) || len(f.liveKeys("east", axLink)) != 1 {
					t.Error("the pass that waits for the peer's status changed the answer or the keys")
				}
				// It is not retried on a backoff: the peer's status queues it.
				it := item{kind: "link", peer: "east", link: axLink}
				for f.e.queue.Len() > 0 {
					got, _ := f.e.queue.Get()
					f.e.queue.Done(got)
				}
				f.e.requeue(it, 0, err)
				time.Sleep(700 * time.Millisecond) // longer than the first backoff step (500 ms)
				if n := f.e.queue.Len(); n != 0 {
					t.Errorf("%d items queued after the wait, want none until the peer's status", n)
				}
				if err := f.e.OnLinkStatus("east", &peerv1.LinkStatus{Link: axLink.Proto(), AppliedApiKeyId: made, WrittenApiKeyId: made, Connected: true}); err != nil {
					t.Fatal(err)
				}
				if n := f.e.queue.Len(); n != 1 {
					t.Errorf("%d items queued after the peer's status, want the link", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := f.credentials("east", axLink)
			live := f.liveKeys("east", axLink)
			if !tc.wantFresh {
				if c.GetApiKeyId() != made || c.GetApiKeyEncoded() != "" || len(live) != 1 {
					t.Errorf("sent key %s with value %v, live %v: want %s again without its value", c.GetApiKeyId(), c.GetApiKeyEncoded() != "", live, made)
				}
				return
			}
			if c.GetApiKeyId() == made || c.GetApiKeyEncoded() == "" {
				t.Errorf("sent key %s (value %v), want a new key with its value", c.GetApiKeyId(), c.GetApiKeyEncoded() != "")
			}
			if len(live) != 1 || live[0] != c.GetApiKeyId() {
				t.Errorf("live keys %v, want only the new one (the undelivered key invalidated)", live)
			}
		})
	}
}
