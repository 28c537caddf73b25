package importer

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// The full reconcile of the fixture's Elasticsearch with the API-key model: what the peer sends
// becomes the credentials Secret, the CA ConfigMap, the wiring of the Elasticsearch resource and
// proxy-mode remote cluster settings; failures of each step leave what was applied and are
// finished by the next pass.

const (
	testProxy  = "logs.west.example:9443"
	testServer = "logs-es-remote-cluster.data.svc"
)

// apiKeyCredentials are what a peer sends for alias with the API-key model.
func apiKeyCredentials(alias, keyID string, ca []byte) *peerv1.Credentials {
	return &peerv1.Credentials{Link: &peerv1.Link{LocalNamespace: fxNS, LocalElasticsearch: fxES, Alias: alias},
		Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: keyID, ApiKeyEncoded: encodedKey(keyID), CaBundle: ca,
		ProxyAddress: testProxy, ServerName: testServer}
}

func encodedKey(keyID string) string {
	return base64.StdEncoding.EncodeToString([]byte(keyID + ":secret-of-" + keyID))
}

// applied is what the fixture's Kubernetes and Elasticsearch hold for the API-key links.
type applied struct {
	secret   *corev1.Secret    // nil: none
	cm       *corev1.ConfigMap // nil: none
	es       *unstructured.Unstructured
	settings map[string]esim.RemoteClusterSettings
}

func (f *fixture) applied(t *testing.T) applied {
	t.Helper()
	ctx := t.Context()
	var a applied
	s, err := f.Kube.CoreV1().Secrets(fxNS).Get(ctx, wiring.CredentialsSecretName(fxES), metav1.GetOptions{})
	switch {
	case err == nil:
		a.secret = s
	case !apierrors.IsNotFound(err):
		t.Fatal(err)
	}
	a.cm = f.storedConfigMap(t, wiring.CAConfigMapName(fxES))
	a.es = f.storedES(t)
	a.settings = map[string]esim.RemoteClusterSettings{}
	for _, rc := range f.node.RemoteClusters() {
		a.settings[rc.Alias] = rc
	}
	return a
}

// key is the encoded key of alias in the credentials Secret ("" when none).
func (a applied) key(alias string) string {
	if a.secret == nil {
		return ""
	}
	return string(a.secret.Data[wiring.CredentialsKey(alias)])
}

// keyID is the key id the Secret records for alias.
func (a applied) keyID(alias string) string {
	if a.secret == nil {
		return ""
	}
	return readJSONMap(a.secret.Annotations, annotationKeyIDs)[alias]
}

// caFingerprints are the fingerprints of the CAs the ConfigMap holds for alias, newest first.
func (a applied) caFingerprints(t *testing.T, alias string) []string {
	t.Helper()
	if a.cm == nil {
		return nil
	}
	certs, err := pemutil.ParseCertificates([]byte(wiring.AliasCABundles(a.cm.Data, a.cm.Annotations)[alias]), pemutil.Limits{})
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range certs {
		out = append(out, pemutil.Fingerprint(c))
	}
	return out
}

// wantKeyAndCA fails t unless a holds key-1 and, as its only CA, ca for alias logs; when says
// after what.
func (a applied) wantKeyAndCA(t *testing.T, ca []byte, when string) {
	t.Helper()
	if a.key("logs") != encodedKey("key-1") || a.keyID("logs") != "key-1" {
		t.Errorf("key %s %q (id %q), want key-1", when, a.key("logs"), a.keyID("logs"))
	}
	if got := a.caFingerprints(t, "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, ca) {
		t.Errorf("CAs %s %v, want only %s", when, got, testenv.Fingerprint(t, ca))
	}
}

func (a applied) wired() bool { return a.es.GetAnnotations()[wiring.AnnotationWiring] != "" }

// settle waits until the informer cache holds what the last pass wrote (the next pass reads
// the Elasticsearch resource from it).
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	want := f.applied(t)
	waitCache(t, func() bool {
		// The fake API server keeps no resourceVersion: compare what the passes write.
		es, ok := f.im.cfg.Cache.Elasticsearch(fxNS, fxES)
		return ok && reflect.DeepEqual(es.Object["spec"], want.es.Object["spec"]) &&
			reflect.DeepEqual(es.GetAnnotations(), want.es.GetAnnotations())
	})
}

// tryReconcile runs one pass over search/ccs and returns its error.
func (f *fixture) tryReconcile(t *testing.T) error {
	t.Helper()
	_, err := f.im.reconcile(t.Context(), types.NamespacedName{Namespace: fxNS, Name: fxES})
	return err
}

// reasons are the link conditions of a RemoteCluster, type -> reason.
func (f *fixture) reasons(t *testing.T, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range f.remoteCluster(t, name).Status.Conditions {
		out[c.Type] = c.Reason
	}
	return out
}

// connectAll makes the node report every alias connected.
func (f *fixture) connectAll() {
	f.node.SetRemoteStatusFunc(func(string) esim.RemoteStatus {
		return esim.RemoteStatus{Connected: true, NumSocketsConnected: 1, HasCredentials: true}
	})
}

// TestReconcileAppliesCredentials: credentials received for a link become, in one pass, the
// encoded key in the credentials Secret (with its id), the CA in the CA ConfigMap, the wiring of
// the Elasticsearch resource and the proxy-mode settings of the alias; the conditions say so and
// the peer gets a link status naming the key written and the CA applied. A second pass with
// nothing new writes nothing and changes no setting.
func TestReconcileAppliesCredentials(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	ca := newTestCA(t, "west-transport")
	if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", ca)); err != nil {
		t.Fatalf("valid credentials refused: %v", err)
	}
	f.reconcile(t)

	a := f.applied(t)
	if a.key("logs") != encodedKey("key-1") || a.keyID("logs") != "key-1" {
		t.Errorf("credentials Secret holds %q (id %q), want the encoded key-1", a.key("logs"), a.keyID("logs"))
	}
	if a.secret != nil && a.secret.Labels[labelElasticsearch] != fxES {
		t.Errorf("credentials Secret labels %v, want the agent's labels for %s", a.secret.Labels, fxES)
	}
	if got := a.caFingerprints(t, "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, ca) {
		t.Errorf("CA ConfigMap holds %v for logs, want the peer's CA", got)
	}
	if a.cm != nil && !strings.Contains(a.cm.Data[wiring.CAFileKey], strings.TrimSpace(string(ca))) {
		t.Error("ca.crt, the file the nodes read, lacks the peer's CA")
	}
	if !a.wired() {
		t.Errorf("the Elasticsearch resource is not wired: annotations %v", a.es.GetAnnotations())
	}
	s, ok := a.settings["logs"]
	if !ok || s.Mode != "proxy" || s.ProxyAddress != testProxy || s.ServerName != testServer {
		t.Errorf("remote cluster settings of logs %+v (present %v), want proxy mode to %s (%s)", s, ok, testProxy, testServer)
	}
	got := f.reasons(t, "logs")
	for typ, want := range map[string]string{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied,
		v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteConnected} {
		if got[typ] != want {
			t.Errorf("%s reason %q, want %q (all: %v)", typ, got[typ], want, got)
		}
	}
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	ls, ok := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
	if !ok || ls.GetWrittenApiKeyId() != "key-1" || !ls.GetConnected() || len(ls.GetAppliedCaFingerprints()) != 1 || ls.GetAppliedCaFingerprints()[0] != testenv.Fingerprint(t, ca) {
		t.Errorf("link status to the peer %v, want key-1 written, connected, the CA applied", ls)
	}
	if rc := f.remoteCluster(t, "logs"); rc.Status.AppliedSequence != 1 {
		t.Errorf("status.appliedSequence %d, want 1", rc.Status.AppliedSequence)
	}

	// Nothing new: no write to Kubernetes, no settings write to Elasticsearch.
	f.settle(t)
	stored := f.remoteCluster(t, "logs")
	waitCache(t, func() bool {
		for _, rc := range f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES) {
			if rc.Name == "logs" { // the fake API server keeps no resourceVersion: compare the status
				return reflect.DeepEqual(rc.Status, stored.Status)
			}
		}
		return false
	})
	writes, statusWrites := len(writeActions(f)), len(statusActions(f))
	f.faults.Set(esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 500, ErrType: "should_not_be_called"})
	f.reconcile(t)
	if n := f.faults.Count(); n != 0 {
		t.Errorf("a pass with nothing new wrote the remote cluster settings %d times", n)
	}
	if w := writeActions(f); len(w) != writes {
		t.Errorf("a pass with nothing new wrote to Kubernetes: %v", w[writes:])
	}
	if w := statusActions(f); len(w) != statusWrites {
		t.Errorf("a pass with nothing new wrote RemoteCluster status %d times; now %+v, was %+v", len(w)-statusWrites, f.remoteCluster(t, "logs").Status, stored.Status)
	}
	after := f.applied(t)
	if after.es.GetResourceVersion() != a.es.GetResourceVersion() {
		t.Error("a pass with nothing new updated the Elasticsearch resource")
	}
}

// statusActions are the fake API server's RemoteCluster status writes.
func statusActions(f *fixture) []string {
	var out []string
	for _, a := range f.Dynamic.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" && a.GetResource().Resource == "remoteclusters" {
			out = append(out, a.GetNamespace())
		}
	}
	return out
}

// writeActions are the fake API server's writes of the credentials Secret and the CA ConfigMap,
// as "verb resource".
func writeActions(f *fixture) []string {
	var out []string
	for _, a := range f.Kube.Actions() {
		name := ""
		switch a := a.(type) {
		case k8stesting.CreateAction: // an UpdateAction too (the same methods)
			name = a.GetObject().(metav1.Object).GetName()
		case k8stesting.DeleteAction:
			name = a.GetName()
		default:
			continue
		}
		if a.GetNamespace() == fxNS && (name == wiring.CredentialsSecretName(fxES) || name == wiring.CAConfigMapName(fxES)) {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

// TestReconcileElasticsearchFailures: when the local Elasticsearch fails the settings step, the
// pass fails (retried with backoff), the RemoteCluster's conditions name the failure's reason,
// the Secret and ConfigMap written before the failure stay, and the next pass after the
// failure clears finishes the change: the settings, then the conditions.
func TestReconcileElasticsearchFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  esim.Fault
		reason string
	}{
		{"settings write unavailable", esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 503, ErrType: "cluster_block_exception"}, v1alpha1.ReasonElasticsearchUnavailable},
		{"settings write forbidden", esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 403, ErrType: "security_exception"}, v1alpha1.ReasonElasticsearchForbidden},
		{"settings write rejected", esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 400, ErrType: "illegal_argument_exception"}, v1alpha1.ReasonApplyFailed},
		{"settings read overloaded", esim.Fault{Method: "GET", Prefix: "/_cluster/settings", Status: 429, ErrType: "es_rejected_execution_exception"}, v1alpha1.ReasonElasticsearchUnavailable},
		{"agent user not loaded yet", esim.Fault{Method: "GET", Prefix: "/_cluster/settings", Status: 401, ErrType: "security_exception"}, v1alpha1.ReasonElasticsearchUserPending},
		{"remote info fails", esim.Fault{Method: "GET", Prefix: "/_remote/info", Status: 500, ErrType: "exception"}, v1alpha1.ReasonElasticsearchUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			ca := newTestCA(t, "west-transport")
			if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", ca)); err != nil {
				t.Fatal(err)
			}
			f.faults.Set(tc.fault)
			if err := f.tryReconcile(t); err == nil {
				t.Fatal("the pass succeeded while Elasticsearch failed")
			}
			if f.faults.Count() == 0 {
				t.Fatal("the failing request was not made")
			}
			got := f.reasons(t, "logs")
			for _, typ := range linkConditions {
				if got[typ] != tc.reason {
					t.Errorf("%s reason %q, want %q", typ, got[typ], tc.reason)
				}
			}
			a := f.applied(t)
			if a.key("logs") != encodedKey("key-1") || len(a.caFingerprints(t, "logs")) != 1 || !a.wired() {
				t.Fatalf("what the pass wrote before the failure is gone: key %q, CAs %v, wired %v", a.key("logs"), a.caFingerprints(t, "logs"), a.wired())
			}
			if tc.fault.Method == "PUT" {
				if _, ok := a.settings["logs"]; ok {
					t.Fatal("settings present although their write failed")
				}
			}

			f.faults.Set()
			f.settle(t)
			f.reconcile(t)
			if s, ok := f.applied(t).settings["logs"]; !ok || s.ProxyAddress != testProxy {
				t.Fatalf("settings after recovery %+v (present %v), want the link's", s, ok)
			}
			got = f.reasons(t, "logs")
			if got[v1alpha1.ConditionSettingsApplied] != v1alpha1.ReasonApplied || got[v1alpha1.ConditionConnected] != v1alpha1.ReasonRemoteConnected {
				t.Errorf("conditions after recovery %v, want settings applied and connected", got)
			}
		})
	}
}

// TestReconcileElasticsearchUnreachable: a local Elasticsearch that refuses connections fails the pass with the conditions saying so, and the peer gets no status
// claiming anything applied.
func TestReconcileElasticsearchUnreachable(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.sendKey(t, "logs", "key-1")
	good := f.im.cfg.Elastic
	f.im.cfg.Elastic = newUnreachable(t)
	err := f.tryReconcile(t)
	if err == nil || !elastic.Unavailable(err) {
		t.Fatalf("pass with Elasticsearch unreachable: %v", err)
	}
	got := f.reasons(t, "logs")
	if got[v1alpha1.ConditionSettingsApplied] != v1alpha1.ReasonElasticsearchUnavailable {
		t.Errorf("conditions %v, want ElasticsearchUnavailable", got)
	}
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	if ls := f.outbox.get(link.Resource(link.KindStatus, id)); ls != nil {
		t.Errorf("link status sent while Elasticsearch was unreachable: %v", ls)
	}
	f.im.cfg.Elastic = good
	f.settle(t)
	f.reconcile(t)
	if _, ok := f.applied(t).settings["logs"]; !ok {
		t.Error("settings not applied once Elasticsearch answers again")
	}
}

// unreachable is the Clients of an Elasticsearch whose address refuses connections.
type unreachable struct{ c *elastic.Client }

func newUnreachable(t *testing.T) unreachable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := elastic.NewClient(elastic.ClientConfig{URL: "https://" + addr, Username: "elastic", Password: elastic.Secret("test-password")})
	if err != nil {
		t.Fatal(err)
	}
	return unreachable{c}
}

func (u unreachable) Client(context.Context, elastic.Target) (*elastic.Client, error) {
	return u.c, nil
}

// TestBadCredentialsKeepTheLastGoodState: credentials a peer sends after a good answer are
// refused whole, with the named reason, when any part is invalid; the next pass keeps the key,
// the CA and the settings of the last good answer.
func TestBadCredentialsKeepTheLastGoodState(t *testing.T) {
	goodCA := newTestCA(t, "west-transport")
	bad := func(mutate func(c *peerv1.Credentials)) *peerv1.Credentials {
		c := apiKeyCredentials("logs", "key-2", newTestCA(t, "renewed"))
		mutate(c)
		return c
	}
	for _, tc := range []struct {
		name   string
		creds  *peerv1.Credentials
		reason string
	}{
		{"API key not base64", bad(func(c *peerv1.Credentials) { c.ApiKeyEncoded = "%%% not base64 %%%" }), "InvalidAPIKey"},
		{"API key of another id", bad(func(c *peerv1.Credentials) { c.ApiKeyEncoded = encodedKey("key-3") }), "InvalidAPIKey"},
		{"API key without a secret", bad(func(c *peerv1.Credentials) {
			c.ApiKeyEncoded = base64.StdEncoding.EncodeToString([]byte("key-2:"))
		}), "InvalidAPIKey"},
		{"API key id not URL-safe", bad(func(c *peerv1.Credentials) { c.ApiKeyId = "key/2" }), "InvalidAPIKey"},
		{"CA not PEM", bad(func(c *peerv1.Credentials) {
			c.CaBundle = []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
		}), "InvalidCA"},
		{"CA a leaf", bad(func(c *peerv1.Credentials) { c.CaBundle = testCA(t, false, time.Now().Add(time.Hour)) }), "InvalidCA"},
		{"CA expired", bad(func(c *peerv1.Credentials) { c.CaBundle = testCA(t, true, time.Now().Add(-time.Minute)) }), "InvalidCA"},
		{"no CA", bad(func(c *peerv1.Credentials) { c.CaBundle = nil }), "InvalidCA"},
		{"address without port", bad(func(c *peerv1.Credentials) { c.ProxyAddress = "logs.west.example" }), "InvalidAddress"},
		{"server name not a DNS name", bad(func(c *peerv1.Credentials) { c.ServerName = "logs west" }), "InvalidServerName"},
		{"unknown model", bad(func(c *peerv1.Credentials) { c.Model = peerv1.SecurityModel(42) }), ""},
		{"link not requested", bad(func(c *peerv1.Credentials) { c.Link.Alias = "other" }), "NotRequested"},
		{"version with a newline", bad(func(c *peerv1.Credentials) { c.ElasticsearchVersion = "9.3\n" }), "InvalidCredentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAppliedWithCA(t, goodCA)
			before := f.applied(t)

			err := f.im.OnCredentials(fxPeer, 2, tc.creds)
			var ref *peering.RefusalError
			if !errors.As(err, &ref) || tc.reason != "" && ref.Reason != tc.reason {
				t.Fatalf("OnCredentials = %v, want a refusal %s", err, tc.reason)
			}
			f.reconcile(t)
			after := f.applied(t)
			after.wantKeyAndCA(t, goodCA, "after the refused credentials")
			if s, b := after.settings["logs"], before.settings["logs"]; s.ProxyAddress != b.ProxyAddress || s.ServerName != b.ServerName || s.Mode != b.Mode || b.Mode == "" {
				t.Errorf("settings changed: %+v, want %+v", s, before.settings["logs"])
			}
			if rc := f.remoteCluster(t, "logs"); rc.Status.AppliedSequence != 1 {
				t.Errorf("status.appliedSequence %d, want 1 (the refused sequence is not applied)", rc.Status.AppliedSequence)
			}
		})
	}
}

// TestWrongModelRefused: certificate-model credentials for an API-key RemoteCluster are refused
// with ModelNotAllowed, and nothing of them reaches the Secret, the ConfigMap or the settings.
func TestWrongModelRefused(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "logs"))
	var ref *peering.RefusalError
	if !errors.As(err, &ref) || ref.Reason != v1alpha1.ReasonModelNotAllowed {
		t.Fatalf("OnCredentials = %v, want ModelNotAllowed", err)
	}
	f.reconcile(t)
	a := f.applied(t)
	if a.secret != nil || a.cm != nil || len(a.settings) != 0 || a.wired() {
		t.Errorf("applied for refused credentials: Secret %v, ConfigMap %v, settings %v, wired %v", a.secret != nil, a.cm != nil, a.settings, a.wired())
	}
	if got := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]; got != v1alpha1.ReasonModelNotAllowed {
		t.Errorf("CredentialsApplied reason %q, want ModelNotAllowed", got)
	}
}

// TestHalfAppliedChangeFinished: a pass cut short after the Secret and ConfigMap were written
// (the wiring of the Elasticsearch resource failed) leaves no settings, and the next pass wires
// the resource and writes the settings without writing the Secret or ConfigMap again.
func TestHalfAppliedChangeFinished(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	f.sendKey(t, "logs", "key-1")
	dyn := f.im.cfg.Dynamic.(*dynamicfake.FakeDynamicClient)
	fail := fakekube.FailWhile(dyn, "update", "elasticsearches", apierrors.NewServiceUnavailable("the API server is restarting"))
	err := f.tryReconcile(t)
	if err == nil || !strings.Contains(err.Error(), "failed to wire Elasticsearch") {
		t.Fatalf("pass with the wiring failing: %v", err)
	}
	a := f.applied(t)
	if a.key("logs") == "" || a.cm == nil || a.wired() || len(a.settings) != 0 {
		t.Fatalf("after the cut: key %v, ConfigMap %v, wired %v, settings %v; want Secret and ConfigMap only", a.key("logs") != "", a.cm != nil, a.wired(), a.settings)
	}
	waitCache(t, func() bool {
		_, ok := f.im.cachedSecret(fxNS, wiring.CredentialsSecretName(fxES))
		_, ok2 := f.im.cachedConfigMap(fxNS, wiring.CAConfigMapName(fxES))
		return ok && ok2
	})
	writes := len(writeActions(f))
	fail.Store(false)
	f.reconcile(t)
	a = f.applied(t)
	if !a.wired() || a.settings["logs"].ProxyAddress != testProxy {
		t.Fatalf("the next pass did not finish: wired %v, settings %v", a.wired(), a.settings)
	}
	for _, w := range writeActions(f)[writes:] {
		if !strings.HasPrefix(w, "update secrets") { // the effective-key record may be updated
			t.Errorf("the next pass wrote again what was already applied: %s", w)
		}
	}
}

// TestLinkRemoval: when the peer withdraws its credentials, the alias's settings go from
// Elasticsearch, then the wiring, the Secret and the ConfigMap (no link left); when the
// RemoteCluster is deleted, its import request is withdrawn and its finalizer released.
func TestLinkRemoval(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, f *fixture)
		// deleted: the RemoteCluster is being deleted (finalizer released, import withdrawn).
		deleted bool
	}{
		{name: "credentials withdrawn", remove: func(t *testing.T, f *fixture) {
			f.im.OnCredentialsRemoved(fxPeer, link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"})
		}},
		{name: "peering ended", remove: func(t *testing.T, f *fixture) {
			f.im.PeerGone(fxPeer)
		}},
		{name: "RemoteCluster deleted", deleted: true, remove: func(t *testing.T, f *fixture) {
			rc := f.remoteCluster(t, "logs")
			now := metav1.Now()
			rc.DeletionTimestamp = &now
			if _, err := f.CRDs.RemoteClusters().Update(t.Context(), rc); err != nil {
				t.Fatal(err)
			}
			waitCache(t, func() bool {
				rcs := f.im.cfg.Cache.RemoteClustersShared()
				return len(rcs) == 1 && rcs[0].DeletionTimestamp != nil
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAppliedFixture(t)
			if a := f.applied(t); len(a.settings) != 1 || !a.wired() {
				t.Fatalf("link not applied: settings %v, wired %v", a.settings, a.wired())
			}
			// Someone else's alias on the same cluster stays whatever happens to the agent's.
			if _, err := f.es.PutRemote(t.Context(), "users-own", elastic.RemoteSettings{Mode: "proxy", ProxyAddress: "192.0.2.1:9443"}); err != nil {
				t.Fatal(err)
			}
			tc.remove(t, f)
			f.reconcile(t)
			a := f.applied(t)
			if _, ok := a.settings["logs"]; ok {
				t.Error("the alias's settings stay in Elasticsearch")
			}
			if _, ok := a.settings["users-own"]; !ok {
				t.Error("an alias the agent never configured was removed")
			}
			if a.secret != nil || a.cm != nil || a.wired() {
				t.Errorf("after the last link went: Secret %v, ConfigMap %v, wired %v; want all gone", a.secret != nil, a.cm != nil, a.wired())
			}
			id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
			if tc.deleted {
				rc := f.remoteCluster(t, "logs")
				if slices.Contains(rc.Finalizers, v1alpha1.Finalizer) {
					t.Error("the finalizer stays after the alias went")
				}
				if req := f.outbox.get(link.Resource(link.KindImport, id)); req != nil {
					t.Errorf("the import request is still published: %v", req)
				}
			} else if got := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]; got != v1alpha1.ReasonWaitingForPeer {
				t.Errorf("CredentialsApplied reason %q after the withdrawal, want WaitingForPeer", got)
			}
		})
	}
}

// TestOnePassAddsEveryFinalizer: RemoteClusters created at once get the finalizer in one pass,
// which goes on to publish their import requests (a pass per RemoteCluster, each waiting for the
// event of the previous one, held 1,000 links' requests back for up to a minute).
func TestOnePassAddsEveryFinalizer(t *testing.T) {
	var rcs []*v1alpha1.RemoteCluster
	for _, alias := range []string{"a", "b", "c", "d"} {
		rc := remoteCluster(alias, v1alpha1.SecurityModelAPIKey)
		rc.Finalizers = nil
		rcs = append(rcs, rc)
	}
	f := newFixture(t, rcs...)
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == len(rcs) })
	f.reconcile(t)
	for _, rc := range rcs {
		if got := f.remoteCluster(t, rc.Name); !slices.Contains(got.Finalizers, v1alpha1.Finalizer) {
			t.Errorf("RemoteCluster %s has no finalizer after one pass", rc.Name)
		}
		id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: rc.Spec.Alias}
		if f.outbox.get(link.Resource(link.KindImport, id)) == nil {
			t.Errorf("no import request for %s after the pass that added its finalizer", rc.Name)
		}
	}
}

// TestLinksArrivingTogetherCostOneSettingsWrite: a pass that configures many new links records
// their aliases with one write of the record and sets them with one PUT /_cluster/settings (one
// cluster state update), not one of each per link.
func TestLinksArrivingTogetherCostOneSettingsWrite(t *testing.T) {
	const links = 12
	f, _ := newAPIKeyLinksFixture(t, links)
	f.Kube.ClearActions()
	puts := f.settingsPuts()
	f.reconcile(t)
	if got := len(f.node.RemoteClusters()); got != links {
		t.Fatalf("%d remote clusters configured, want %d", got, links)
	}
	if n := f.settingsPuts() - puts; n != 1 {
		t.Errorf("%d PUT /_cluster/settings for %d new links, want 1", n, links)
	}
	recordWrites := 0
	for _, a := range f.Kube.Actions() {
		if o, ok := a.(interface{ GetObject() runtime.Object }); ok && (a.GetVerb() == "create" || a.GetVerb() == "update") {
			if cm, ok := o.GetObject().(*corev1.ConfigMap); ok && cm.Name == aliasRecordName {
				recordWrites++
			}
		}
	}
	if recordWrites != 1 {
		t.Errorf("%d writes of the alias record for %d new links, want 1", recordWrites, links)
	}
}
