package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// teamAdmin is the users' own file realm user of the Elasticsearch resources of
// TestOwnUserWithoutElastic: with spec.auth.disableElasticUser there is no elastic user, and the
// probe samples _remote/info as this one.
const (
	teamAdmin         = "team-admin"
	teamAdminPassword = "team-admin-test-password" // test-only credential
)

// withoutElastic creates the users' own Secret and returns a Mutate that disables the elastic
// user and names that Secret in spec.auth.fileRealm, as a user locking down a cluster would.
func withoutElastic(ctx context.Context, t *testing.T, c *harness.Cluster, ns string) func(*unstructured.Unstructured) {
	t.Helper()
	if err := c.Env.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: teamAdmin}, Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": teamAdmin, "password": teamAdminPassword, "roles": "superuser"}}
	if _, err := c.Env.Kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return func(es *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(es.Object, map[string]any{
			"disableElasticUser": true,
			"fileRealm":          []any{map[string]any{"secretName": teamAdmin}},
		}, "spec", "auth")
	}
}

// TestOwnUserWithoutElastic: an exported and a consuming Elasticsearch with
// spec.auth.disableElasticUser link through each agent's own Elasticsearch user and rotate their
// API key make-before-break without a disconnected sample. ECK aggregates the agent's users and
// roles into <es>-es-xpack-file-realm next to the users' own; the exported Elasticsearch, which
// nothing else changes, never restarts for it; each user has only its side's roles (the consuming
// side's user is refused API keys with Elasticsearch's 403); the keys belong to the agent's user.
func TestOwnUserWithoutElastic(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const ns, alias = "leastpriv", "west-leastpriv"
	west, east := world.Clusters["west"], world.Clusters["east"]
	remotePod, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.1.0", RemoteClusterServer: true,
		Mutate: withoutElastic(ctx, t, west, ns)})
	if err != nil {
		t.Fatal(err)
	}
	localPod, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2", Mutate: withoutElastic(ctx, t, east, ns)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*harness.Cluster{west, east} {
		if _, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, map[string]string{"west": "logs", "east": "ccs"}[c.Name]+"-es-elastic-user", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("%s: ECK made an elastic user although disableElasticUser is set (err %v)", c.Name, err)
		}
	}
	remoteStart := remotePod.StartTime()
	if _, err := west.Export(ctx, ns, "logs", "logs", remotePod.RemoteClusterAddress(), []string{"east"}, func(e *v1alpha1.ClusterExport) {
		e.Spec.APIKey = &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 90 * time.Second}}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, ns, alias, "ccs", alias, "west", ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	probe := harness.StartProbeAs(ctx, localPod, teamAdmin, teamAdminPassword, alias, time.Second)
	defer probe.Stop()
	if _, err := probe.WaitConnected(ctx, 90*time.Second); err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, ns, alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}

	checkAgentUser(ctx, t, west, ns, "logs", esuser.RoleAPIKeys+","+esuser.RoleSettings)
	checkAgentUser(ctx, t, east, ns, "ccs", esuser.RoleSettings)
	first := agentKeys(t, remotePod)
	if len(first) != 1 {
		t.Fatalf("want one live key owned by %s, got %v", esuser.Username, first)
	}
	consumerCannotMakeKeys(ctx, t, east, localPod, ns)

	// The key rotates (at 2/3 of 90s) make-before-break, by the agent's user, and the link holds.
	waitFor(ctx, t, 3*time.Minute, "first key replaced and invalidated", func() (bool, string) {
		k, _ := remotePod.Node().APIKey(first[0])
		live := agentKeys(t, remotePod)
		return k.Invalidated && len(live) == 1 && live[0] != first[0], "live keys " + strings.Join(live, ",")
	})
	if got := remotePod.StartTime(); !got.Equal(remoteStart) {
		t.Errorf("the exported Elasticsearch restarted at %s: adding the agent's user must not restart it", got.Format(time.TimeOnly))
	}
	requireNoDisconnects(t, probe.Stop())
}

// checkAgentUser checks, in one environment, the agent's user of an Elasticsearch: its Secrets,
// its entries in spec.auth next to the users' own, and ECK's aggregate of both.
func checkAgentUser(ctx context.Context, t *testing.T, c *harness.Cluster, ns, es, roles string) {
	t.Helper()
	user, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, es+"-ecklink-user", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if user.Type != corev1.SecretTypeBasicAuth || string(user.Data["username"]) != esuser.Username || string(user.Data["roles"]) != roles {
		t.Errorf("%s: user Secret %s, username %q, roles %q; want roles %q", c.Name, user.Type, user.Data["username"], user.Data["roles"], roles)
	}
	obj, err := c.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(ns).Get(ctx, es, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(field string) []string {
		list, _, _ := unstructuredSlice(obj.Object, "spec", "auth", field)
		var out []string
		for _, item := range list {
			out = append(out, item.(map[string]any)["secretName"].(string))
		}
		return out
	}
	if fr, r := names("fileRealm"), names("roles"); !slices.Equal(fr, []string{teamAdmin, es + "-ecklink-user"}) || !slices.Equal(r, []string{es + "-ecklink-roles"}) {
		t.Errorf("%s: spec.auth.fileRealm %v, roles %v", c.Name, fr, r)
	}
	if off, _, _ := unstructured.NestedBool(obj.Object, "spec", "auth", "disableElasticUser"); !off {
		t.Errorf("%s: spec.auth.disableElasticUser was changed", c.Name)
	}
	// What ECK did with them: one file realm with both users and no elastic, the agent's roles.
	agg, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, es+"-es-xpack-file-realm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	users := "\n" + string(agg.Data["users"])
	for _, want := range []string{"\n" + esuser.Username + ":$2", "\n" + teamAdmin + ":$2"} {
		if !strings.Contains(users, want) {
			t.Errorf("%s: ECK's users file lacks %q (bcrypt)", c.Name, strings.TrimPrefix(want, "\n"))
		}
	}
	if strings.Contains(users, "\nelastic:") {
		t.Errorf("%s: ECK's users file has elastic", c.Name)
	}
	for _, role := range strings.Split(roles, ",") {
		if !strings.Contains("\n"+string(agg.Data["users_roles"]), "\n"+role+":") || !strings.Contains(string(agg.Data["roles.yml"]), role+":") {
			t.Errorf("%s: ECK's users_roles or roles.yml lacks %s", c.Name, role)
		}
	}
}

// agentKeys lists the live API keys of a pod, failing on a live key that the agent's user does
// not own.
func agentKeys(t *testing.T, p *pod.Pod) []string {
	t.Helper()
	var out []string
	for _, k := range p.Node().APIKeys() {
		if k.Invalidated || k.Expired(time.Now()) {
			continue
		}
		if k.Username != esuser.Username {
			t.Errorf("live key %s belongs to %q", k.ID, k.Username)
		}
		out = append(out, k.ID)
	}
	return out
}

// consumerCannotMakeKeys: the consuming side's user has no API key privilege, as its own
// Elasticsearch (ECK's aggregated roles) decides.
func consumerCannotMakeKeys(ctx context.Context, t *testing.T, c *harness.Cluster, p *pod.Pod, ns string) {
	t.Helper()
	user, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, "ccs-ecklink-user", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := p.ClientAs(string(user.Data["username"]), string(user.Data["password"]))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/_security/cross_cluster/api_key",
		strings.NewReader(`{"name":"x","access":{"search":[{"names":["*"]}]}}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Perform(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("the consuming side's user creates a cross-cluster key: status %d, want 403", res.StatusCode)
	}
}
