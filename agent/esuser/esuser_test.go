package esuser

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/test/esim"
)

// fakeCache serves the objects of a test; handlers are not called (tests reconcile directly).
type fakeCache struct {
	kube    *fake.Clientset
	es      map[string]*unstructured.Unstructured
	exports []*v1alpha1.ClusterExport
	remotes []*v1alpha1.RemoteCluster
}

func (f *fakeCache) Elasticsearch(ns, name string) (*unstructured.Unstructured, bool) {
	es, ok := f.es[ns+"/"+name]
	return es, ok
}
func (f *fakeCache) ClusterExports() []*v1alpha1.ClusterExport       { return f.exports }
func (f *fakeCache) RemoteClustersShared() []*v1alpha1.RemoteCluster { return f.remotes }
func (f *fakeCache) RemoteClustersSharedOf(ns, es string) []*v1alpha1.RemoteCluster {
	var out []*v1alpha1.RemoteCluster
	for _, rc := range f.remotes {
		if rc.Namespace == ns && rc.Spec.ElasticsearchRef.Name == es {
			out = append(out, rc)
		}
	}
	return out
}
func (f *fakeCache) OnElasticsearch(cache.Handler) error { return nil }
func (f *fakeCache) OnClusterExport(cache.Handler) error { return nil }
func (f *fakeCache) OnRemoteCluster(cache.Handler) error { return nil }
func (f *fakeCache) OnOwnObject(cache.Handler) error     { return nil }

// OwnSecret reads through to the fake clientset, as a synced informer would show it.
func (f *fakeCache) OwnSecret(ns, name string) (*corev1.Secret, bool) {
	o, err := f.kube.Tracker().Get(corev1.SchemeGroupVersion.WithResource("secrets"), ns, name)
	s, ok := o.(*corev1.Secret)
	if err != nil || !ok || s.Labels[cache.ManagedByLabel] != cache.ManagedByValue {
		return nil, false
	}
	return s, true
}

func elasticsearch(name string, auth map[string]any) *unstructured.Unstructured {
	spec := map[string]any{"version": "9.1.0", "nodeSets": []any{map[string]any{"name": "default", "count": int64(1)}}}
	if auth != nil {
		spec["auth"] = auth
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1", "kind": "Elasticsearch",
		"metadata": map[string]any{"name": name, "namespace": "ns"}, "spec": spec,
	}}
}

func export(es string, model v1alpha1.SecurityModel) *v1alpha1.ClusterExport {
	return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x-" + es},
		Spec: v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es}, Model: model}}
}

func remote(es string, w v1alpha1.Wiring) *v1alpha1.RemoteCluster {
	return &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "r-" + es},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es}, Wiring: w}}
}

type fixture struct {
	c     *Controller
	cache *fakeCache
	kube  *fake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
}

func newFixture(t *testing.T, es ...*unstructured.Unstructured) *fixture {
	t.Helper()
	kube := fake.NewClientset()
	f := &fixture{cache: &fakeCache{kube: kube, es: map[string]*unstructured.Unstructured{}}, kube: kube,
		dyn: fakekube.Dynamic(t, nil, es...)}
	f.refresh(t)
	n := 0
	var err error
	f.c, err = New(Config{Cache: f.cache, Kube: f.kube, Dynamic: f.dyn, NewPassword: func() (string, error) {
		n++
		return "generated-password-" + string(rune('0'+n)), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// refresh makes the cache show the stored Elasticsearch resources, as the informer would.
func (f *fixture) refresh(t *testing.T) {
	t.Helper()
	list, err := f.dyn.Resource(eck.ElasticsearchGVR).Namespace("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.cache.es = map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		f.cache.es["ns/"+list.Items[i].GetName()] = &list.Items[i]
	}
}

func (f *fixture) reconcile(t *testing.T, es string) {
	t.Helper()
	if err := f.c.reconcile(context.Background(), types.NamespacedName{Namespace: "ns", Name: es}); err != nil {
		t.Fatalf("reconcile %s: %v", es, err)
	}
	f.refresh(t)
}

func (f *fixture) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	s, err := f.kube.CoreV1().Secrets("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) absent(t *testing.T, name string) {
	t.Helper()
	if _, err := f.kube.CoreV1().Secrets("ns").Get(context.Background(), name, metav1.GetOptions{}); err == nil {
		t.Errorf("Secret %s still exists", name)
	}
}

func TestProvisionsOnlyTheRolesTheUseNeeds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exports []*v1alpha1.ClusterExport
		remotes []*v1alpha1.RemoteCluster
		roles   string // "" means no user at all
		wired   bool
	}{
		{"exported", []*v1alpha1.ClusterExport{export("logs", "")}, nil, "ecklink_api_keys,ecklink_settings", true},
		{"consuming", nil, []*v1alpha1.RemoteCluster{remote("logs", "")}, "ecklink_settings", true},
		{"both", []*v1alpha1.ClusterExport{export("logs", v1alpha1.SecurityModelAPIKey)}, []*v1alpha1.RemoteCluster{remote("logs", v1alpha1.WiringManaged)}, "ecklink_api_keys,ecklink_settings", true},
		{"consuming, manual wiring", nil, []*v1alpha1.RemoteCluster{remote("logs", v1alpha1.WiringManual)}, "ecklink_settings", false},
		{"certificate-model export", []*v1alpha1.ClusterExport{export("logs", v1alpha1.SecurityModelCertificate)}, nil, "ecklink_api_keys,ecklink_settings", true},
		{"another cluster's links", []*v1alpha1.ClusterExport{export("other", "")}, []*v1alpha1.RemoteCluster{remote("other", "")}, "", false},
		{"unused", nil, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, elasticsearch("logs", nil))
			f.cache.exports, f.cache.remotes = tc.exports, tc.remotes
			f.reconcile(t, "logs")
			es, _ := f.cache.Elasticsearch("ns", "logs")
			if tc.roles == "" {
				f.absent(t, "logs-ecklink-user")
				f.absent(t, "logs-ecklink-roles")
			} else {
				user := f.secret(t, "logs-ecklink-user")
				if user.Type != corev1.SecretTypeBasicAuth || string(user.Data["username"]) != Username || string(user.Data["roles"]) != tc.roles ||
					string(user.Data["password"]) != "generated-password-1" || user.Labels[cache.ManagedByLabel] != cache.ManagedByValue {
					t.Errorf("user Secret = %s %v roles %q", user.Type, user.Labels, user.Data["roles"])
				}
				if got := string(f.secret(t, "logs-ecklink-roles").Data["roles.yml"]); got != string(RolesYML()) {
					t.Errorf("roles.yml = %q", got)
				}
			}
			fr, roles := testenv.AuthSecretNames(es, "fileRealm"), testenv.AuthSecretNames(es, "roles")
			if wired := len(fr) == 1 && fr[0] == "logs-ecklink-user" && len(roles) == 1 && roles[0] == "logs-ecklink-roles"; wired != tc.wired {
				t.Errorf("spec.auth = fileRealm %v roles %v, wired %v", fr, roles, tc.wired)
			}
		})
	}
}

// The password is generated once; roles follow the use; the user's own spec.auth entries stay;
// when nothing needs the user any more, the agent's entries and Secrets go.
func TestLifecycle(t *testing.T) {
	own := map[string]any{"fileRealm": []any{map[string]any{"secretName": "team-users"}}, "disableElasticUser": true}
	f := newFixture(t, elasticsearch("logs", own))
	f.cache.remotes = []*v1alpha1.RemoteCluster{remote("logs", "")}
	f.reconcile(t, "logs")
	f.reconcile(t, "logs")
	if got := string(f.secret(t, "logs-ecklink-user").Data["roles"]); got != RoleSettings {
		t.Fatalf("roles = %q", got)
	}
	f.cache.exports = []*v1alpha1.ClusterExport{export("logs", "")}
	f.reconcile(t, "logs")
	user := f.secret(t, "logs-ecklink-user")
	if string(user.Data["roles"]) != RoleAPIKeys+","+RoleSettings || string(user.Data["password"]) != "generated-password-1" {
		t.Fatalf("after the export: roles %q, password kept %v", user.Data["roles"], string(user.Data["password"]) == "generated-password-1")
	}
	es, _ := f.cache.Elasticsearch("ns", "logs")
	if got := testenv.AuthSecretNames(es, "fileRealm"); strings.Join(got, ",") != "team-users,logs-ecklink-user" {
		t.Fatalf("fileRealm = %v", got)
	}
	if wiring.MissingAuth(es, Auth("logs")) != nil || !wiring.RecordedAuth(es) {
		t.Fatal("the wiring is not complete or not recorded")
	}

	f.cache.exports, f.cache.remotes = nil, nil
	f.reconcile(t, "logs")
	f.absent(t, "logs-ecklink-user")
	f.absent(t, "logs-ecklink-roles")
	es, _ = f.cache.Elasticsearch("ns", "logs")
	if got := testenv.AuthSecretNames(es, "fileRealm"); strings.Join(got, ",") != "team-users" || testenv.AuthSecretNames(es, "roles") != nil {
		t.Errorf("after removal: fileRealm %v roles %v", got, testenv.AuthSecretNames(es, "roles"))
	}
	if v, _, _ := unstructured.NestedBool(es.Object, "spec", "auth", "disableElasticUser"); !v || wiring.RecordedAuth(es) {
		t.Errorf("the user's spec.auth changed: %v", es.Object["spec"])
	}
}

// A reconcile with nothing to change, and one of an Elasticsearch the agent never worked with,
// make no API request: ECK updates the resources often, and each update enqueues them.
func TestIdleReconcileMakesNoRequests(t *testing.T) {
	f := newFixture(t, elasticsearch("logs", nil), elasticsearch("other", nil))
	f.cache.remotes = []*v1alpha1.RemoteCluster{remote("logs", "")}
	f.reconcile(t, "logs")
	f.kube.ClearActions()
	f.dyn.ClearActions()
	f.reconcile(t, "logs")
	f.reconcile(t, "other")
	if n := len(f.kube.Actions()) + len(f.dyn.Actions()); n != 2 { // the two List calls of refresh
		t.Errorf("%d requests: %v %v", n, f.kube.Actions(), f.dyn.Actions())
	}
}

func TestRefusesSomeoneElsesSecret(t *testing.T) {
	f := newFixture(t, elasticsearch("logs", nil))
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "logs-ecklink-user"}, Data: map[string][]byte{"password": []byte("theirs")}}
	if _, err := f.kube.CoreV1().Secrets("ns").Create(context.Background(), theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.cache.remotes = []*v1alpha1.RemoteCluster{remote("logs", "")}
	err := f.c.reconcile(context.Background(), types.NamespacedName{Namespace: "ns", Name: "logs"})
	if err == nil || !strings.Contains(err.Error(), "is not the agent's") {
		t.Fatalf("err = %v", err)
	}
	if got := f.secret(t, "logs-ecklink-user"); string(got.Data["password"]) != "theirs" {
		t.Error("someone else's Secret was changed")
	}
	f.cache.remotes = nil
	f.reconcile(t, "logs")
	f.secret(t, "logs-ecklink-user") // not deleted either
}

// The roles the agent writes grant exactly the calls each side makes, as Elasticsearch (esim's
// RBAC model) reads roles.yml: a consuming cluster's user cannot touch API keys, reload secure
// settings or do anything else.
func TestRolesGrantTheAgentsCallsOnly(t *testing.T) {
	node, err := esim.NewNode(esim.Config{Version: "9.1.0", ClusterName: "c", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	const pw = "a-password-for-the-test"
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := "consumer:" + string(hash) + "\nexporter:" + string(hash) + "\n"
	usersRoles := RoleSettings + ":consumer,exporter\n" + RoleAPIKeys + ":exporter\n"
	node.SetFileRealm([]byte(users), []byte(usersRoles), RolesYML())
	srv := httptest.NewServer(node.Handler())
	defer srv.Close()
	client := func(user string) *elastic.Client {
		c, err := elastic.NewClient(elastic.ClientConfig{URL: srv.URL, Username: user, Password: elastic.Secret(pw), Transport: srv.Client().Transport})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	access := elastic.Access{Search: []elastic.SearchAccess{{Names: []string{"logs-*"}}}}
	for _, user := range []string{"consumer", "exporter"} {
		c := client(user)
		if _, err := c.PutRemote(ctx, "a", elastic.RemoteSettings{Mode: "proxy", ProxyAddress: "h:9443"}); err != nil {
			t.Errorf("%s: PUT settings: %v", user, err)
		}
		if _, err := c.GetRemoteSettings(ctx); err != nil {
			t.Errorf("%s: GET settings: %v", user, err)
		}
		if _, err := c.RemoteInfo(ctx); err != nil {
			t.Errorf("%s: remote info: %v", user, err)
		}
		if _, err := c.NodeStartTimes(ctx); err != nil {
			t.Errorf("%s: nodes: %v", user, err)
		}
		if _, err := c.ReloadSecureSettings(ctx); !elastic.IsForbidden(err) {
			t.Errorf("%s: reload = %v, want 403 (not granted: the agent never reloads)", user, err)
		}
	}
	if _, err := client("consumer").CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{Name: "k", Access: access}); !elastic.IsForbidden(err) ||
		!strings.Contains(err.Error(), "is unauthorized for user [consumer] with effective roles ["+RoleSettings+"]") {
		t.Errorf("consumer creates a key: %v, want 403", err)
	}
	exp := client("exporter")
	k, err := exp.CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{Name: "k", Access: access})
	if err != nil {
		t.Fatalf("exporter creates a key: %v", err)
	}
	if _, err := exp.UpdateCrossClusterKey(ctx, k.ID, elastic.UpdateKeyRequest{Metadata: map[string]any{"a": "b"}}); err != nil {
		t.Errorf("exporter updates its key: %v", err)
	}
	keys, err := exp.ListKeys(ctx, elastic.KeyQuery{ActiveOnly: true})
	if err != nil || len(keys) != 1 || keys[0].Owner != "exporter" {
		t.Errorf("exporter lists keys: %v %+v", err, keys)
	}
	if res, err := exp.InvalidateKeys(ctx, []string{k.ID}); err != nil || len(res.Invalidated) != 1 {
		t.Errorf("exporter invalidates its key: %v", err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/_security/_authenticate", nil)
	req.SetBasicAuth("exporter", pw)
	if res, err := srv.Client().Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("authenticate: %v", err)
	}
}

// The roles.yml the agent writes, exactly: any widening is a visible change of this test.
func TestRolesYML(t *testing.T) {
	const want = `ecklink_api_keys:
  cluster:
  - manage_security
ecklink_settings:
  cluster:
  - monitor
  - cluster:admin/settings/update
`
	if got := string(RolesYML()); got != want {
		t.Errorf("roles.yml =\n%s\nwant\n%s", got, want)
	}
}
