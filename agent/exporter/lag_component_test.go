package exporter

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakehalf"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

type noClients struct{}

func (noClients) Client(context.Context, elastic.Target) (*elastic.Client, error) {
	return nil, context.Canceled
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPeerLagReported: for both security models, a consumer that has not applied the exported
// cluster's new transport CA, sent by the CA path, within the grace period makes the export's
// reconcile set PeersCurrent False (naming the peer and the deadline) with a Warning Event, and
// raise ecklink_link_peer_lag_seconds; the status that says it applied the CA queues the
// export, whose next pass clears all three.
func TestPeerLagReported(t *testing.T) {
	for _, tc := range []struct {
		model v1alpha1.SecurityModel
		wire  peerv1.SecurityModel
		proxy string
	}{
		{v1alpha1.SecurityModelAPIKey, peerv1.SecurityModel_SECURITY_MODEL_API_KEY, "logs.example.com:9443"},
		// No API key: only the CA warnings apply, and the CA is the exporter's transport CA the
		// consumer adds to its transport trust.
		{v1alpha1.SecurityModelCertificate, peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, "logs.example.com:9300"},
	} {
		t.Run(string(tc.model), func(t *testing.T) { testPeerLagReported(t, tc.model, tc.wire, tc.proxy) })
	}
}

func testPeerLagReported(t *testing.T, model v1alpha1.SecurityModel, wire peerv1.SecurityModel, proxy string) {
	ctx := t.Context()
	clock := &fakeClock{t: time.Now()}
	oldCA, newCA := selfSignedPEM(t, true, clock.Now().Add(-time.Hour)), selfSignedPEM(t, true, clock.Now())
	fp := func(b []byte) string {
		certs, err := pemutil.ParseCertificates(b, pemutil.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return pemutil.Fingerprint(certs[0])
	}
	oldFP, newFP := fp(oldCA), fp(newCA)
	oldEnd := clock.Now().Add(23 * time.Hour) // selfSignedPEM: 24h from its now

	exp := &v1alpha1.ClusterExport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "ClusterExport"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs", Generation: 1, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"}, Model: model,
			ProxyAddress: proxy, Peers: []string{"east"}},
	}
	h := fakehalf.New(t, fakehalf.Config{Environment: "west", Objects: []runtime.Object{exp}, Now: clock.Now, Events: 50,
		Kube: []runtime.Object{&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: eck.TransportCertsPublic("logs"), Labels: map[string]string{eck.ClusterNameLabel: "logs"}},
			Data:       map[string][]byte{"ca.crt": newCA},
		}}})
	events, m, out := h.Events, h.Metrics, newRecordingOutbox()
	e, err := New(Config{Deps: h.Deps(noClients{}), Outbox: out, Lag: LagConfig{CAGrace: time.Minute, TrustExpiry: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.queue.ShutDown)
	e.grants = fakeGrants{peers: []string{"east"}, exports: map[string][]string{"data/logs": {"east"}}} // paired, granted
	h.Start(t)

	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	if err := e.OnImport("east", &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: "data", ExportName: "logs"}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	st := e.links["east"][id]
	st.target = &elastic.Target{Namespace: "data", Name: "logs"}
	st.sent = &peerv1.Credentials{Link: id.Proto(), Model: wire, CaBundle: oldCA, ProxyAddress: proxy}
	e.mu.Unlock()
	// The old CA was sent and applied; ECK renewed it (the Secret holds the new one) and the CA
	// path sent the new one.
	e.noteCAsSent(st, oldCA)
	if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{oldFP}, Connected: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.publishCredentials("east", id, st, nil); err != nil {
		t.Fatal(err)
	}
	out.mu.Lock()
	sent, _ := out.held["east/"+link.Resource(link.KindCredentials, id)].(*peerv1.Credentials)
	out.mu.Unlock()
	if sent == nil || string(sent.GetCaBundle()) != string(newCA) {
		t.Fatalf("the CA path sent %v, want the credentials with the new CA", sent)
	}

	lag := func() string {
		w := httptest.NewRecorder()
		m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		for _, line := range strings.Split(w.Body.String(), "\n") {
			if strings.HasPrefix(line, "ecklink_link_peer_lag_seconds{") {
				return line
			}
		}
		return ""
	}
	pass := func(want metav1.ConditionStatus, reason string) *metav1.Condition {
		t.Helper()
		if _, err := e.reconcileExport(ctx, "data", "logs"); err != nil {
			t.Fatal(err)
		}
		got, err := h.CRDs.ClusterExports().Get(ctx, "data", "logs")
		if err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionPeersCurrent)
		if cond == nil || cond.Status != want || cond.Reason != reason {
			t.Fatalf("PeersCurrent = %+v, want %s %s", cond, want, reason)
		}
		// The next pass starts from the informer's copy. The fake API server keeps no
		// resourceVersions, so the status client cannot tell a copy that lags its own write from
		// a current one (against a real API server it does: kube.ResourceClient.latest): wait
		// until the informer holds this write, or a loaded machine lets the next pass compare
		// with the write before it (seen once: PeersCurrent left False).
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the informer to see PeersCurrent %s %s", want, reason), func() bool {
			c, ok := h.Cache.ClusterExport("data", "logs")
			if !ok {
				return false
			}
			cc := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionPeersCurrent)
			return cc != nil && cc.Status == want && cc.Reason == reason
		})
		return cond
	}
	event := func(want string) {
		t.Helper()
		for {
			select {
			case ev := <-events.Events:
				if strings.Contains(ev, want) {
					return
				}
			default:
				t.Fatalf("no Event %q", want)
			}
		}
	}

	// Within the grace period: current.
	clock.Add(30 * time.Second)
	pass(metav1.ConditionTrue, v1alpha1.ReasonPeersCurrent)
	event("Normal PeersCurrent")
	if l := lag(); !strings.HasSuffix(l, " 0") || !strings.Contains(l, `peer="east"`) || !strings.Contains(l, `export_namespace="data"`) {
		t.Fatalf("lag series %q, want 0 for east", l)
	}

	// Past it: the warning, its Event and the metric.
	clock.Add(40 * time.Second)
	cond := pass(metav1.ConditionFalse, v1alpha1.ReasonPeerCANotApplied)
	deadline := oldEnd.UTC().Format(time.RFC3339)
	for _, want := range []string{"environment east", "link " + id.String(), newFP[:16], deadline} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("message %q lacks %q", cond.Message, want)
		}
	}
	event("Warning PeerCANotApplied PeersCurrent is False: environment east")
	if l := lag(); !strings.HasSuffix(l, " 10") {
		t.Errorf("lag series %q, want 10 (seconds past the grace period)", l)
	}

	// The consumer applies it: the status queues the export, whose pass clears the warning.
	for e.queue.Len() > 0 {
		it, _ := e.queue.Get()
		e.queue.Done(it)
	}
	if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{oldFP, newFP}, Connected: true}); err != nil {
		t.Fatal(err)
	}
	// Queued now (not only the check due after the grace period, which waits in the queue).
	if n := e.queue.Len(); n != 1 {
		t.Fatalf("%d items queued, want the export", n)
	}
	if it, _ := e.queue.Get(); it.kind != "export" || it.ns != "data" || it.name != "logs" {
		t.Fatalf("queued %+v, want the export", it)
	}
	pass(metav1.ConditionTrue, v1alpha1.ReasonPeersCurrent)
	event("Normal PeersCurrent PeersCurrent is True")
	if l := lag(); !strings.HasSuffix(l, " 0") {
		t.Errorf("lag series %q, want 0", l)
	}
}
