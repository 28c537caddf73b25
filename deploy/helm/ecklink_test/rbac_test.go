package ecklink_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ecklink/ecklink/test/testbed"
)

// access is one request the agent's ServiceAccount may or may not make.
type access struct {
	verb, group, resource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += "/" + a.name
	}
	ns := a.namespace
	if ns == "" {
		ns = "(all namespaces)"
	}
	return fmt.Sprintf("%s %s in %s", a.verb, r, ns)
}

func (a access) attributes() *authorizationv1.ResourceAttributes {
	resource, sub, _ := strings.Cut(a.resource, "/")
	return &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: resource, Subresource: sub, Namespace: a.namespace, Name: a.name}
}

// grants expands verbs over resources into accesses.
func grants(namespace, group string, resources, verbs []string) []access {
	var out []access
	for _, r := range resources {
		for _, v := range verbs {
			out = append(out, access{verb: v, group: group, resource: r, namespace: namespace})
		}
	}
	return out
}

// agentNamespaceAccess is what the agent needs in its own namespace (deploy/helm/rbac.yaml).
func agentNamespaceAccess(p permissions, ns, lease string) []access {
	return accesses(p.AgentNamespace, ns, chartValues{leaderElection: true, leaseName: lease})
}

// watchedNamespaceAccess is what the agent needs where it manages Elasticsearch ("" is every
// namespace; deploy/helm/rbac.yaml).
func watchedNamespaceAccess(p permissions, ns string) []access {
	return accesses(p.WatchedNamespaces, ns, chartValues{})
}

// forbiddenEverywhere is what no agent may do anywhere.
func forbiddenEverywhere(ns string) []access {
	return []access{
		{verb: "delete", group: "elasticsearch.k8s.elastic.co", resource: "elasticsearches", namespace: ns},
		{verb: "create", group: "elasticsearch.k8s.elastic.co", resource: "elasticsearches", namespace: ns},
		{verb: "create", group: "ecklink.io", resource: "clusterexports", namespace: ns},
		{verb: "delete", group: "ecklink.io", resource: "remoteclusters", namespace: ns},
		{verb: "deletecollection", resource: "secrets", namespace: ns},
		{verb: "patch", resource: "secrets", namespace: ns},
		{verb: "patch", resource: "events", namespace: ns},
		{verb: "update", resource: "events", namespace: ns},
		{verb: "delete", resource: "events", namespace: ns},
		{verb: "patch", group: "elasticsearch.k8s.elastic.co", resource: "elasticsearches", namespace: ns},
		{verb: "patch", group: "ecklink.io", resource: "remoteclusters", namespace: ns},
		{verb: "patch", group: "ecklink.io", resource: "clusterexports/status", namespace: ns},
		{verb: "list", resource: "services", namespace: ns},
		{verb: "update", resource: "services", namespace: ns},
		{verb: "get", resource: "pods", namespace: ns},
		{verb: "update", resource: "pods", namespace: ns},
		{verb: "delete", resource: "pods", namespace: ns},
		{verb: "create", resource: "pods/exec", namespace: ns},
		{verb: "create", resource: "serviceaccounts/token", namespace: ns},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "roles", namespace: ns},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: ns},
		{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: ns},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns, name: "someone-elses-lease"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		{verb: "list", resource: "nodes"},
		{verb: "list", resource: "namespaces"},
		{verb: "create", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
	}
}

// reviewer answers whether an access is allowed.
type reviewer func(ctx context.Context, a access) (bool, error)

// selfReviewer asks as the ServiceAccount itself, with a token for it (SelfSubjectAccessReview).
func selfReviewer(client kubernetes.Interface) reviewer {
	return func(ctx context.Context, a access) (bool, error) {
		r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: a.attributes()}}, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("failed to review %s: %w", a, err)
		}
		return r.Status.Allowed, nil
	}
}

// subjectReviewer asks as the admin about the ServiceAccount (SubjectAccessReview).
func subjectReviewer(env *testbed.Environment, ns, sa string) reviewer {
	return func(ctx context.Context, a access) (bool, error) {
		r, err := env.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:" + ns + ":" + sa,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: a.attributes(),
			}}, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("failed to review %s: %w", a, err)
		}
		return r.Status.Allowed, nil
	}
}

func expect(ctx context.Context, t *testing.T, review reviewer, allowed bool, accesses []access) {
	t.Helper()
	for _, a := range accesses {
		got, err := review(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if got != allowed {
			t.Errorf("%s: allowed=%v, want %v", a, got, allowed)
		}
	}
}

// saClient returns a client authenticated with a token of the release's ServiceAccount.
func saClient(ctx context.Context, t *testing.T, env *testbed.Environment, ns, sa string) kubernetes.Interface {
	t.Helper()
	path, err := env.ServiceAccountKubeconfig(ctx, ns, sa, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400 // hundreds of reviews; client-go's default of 5/s takes a minute
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// checkClusterWideRBAC checks the default release (ServiceAccount ecklink-system/ecklink).
func checkClusterWideRBAC(ctx context.Context, t *testing.T, env *testbed.Environment) {
	p := loadPermissions(t)
	client := saClient(ctx, t, env, "ecklink-system", "ecklink")
	review := selfReviewer(client)
	expect(ctx, t, review, true, agentNamespaceAccess(p, "ecklink-system", "ecklink-agent"))
	for _, ns := range []string{"team-a", "team-c", ""} {
		expect(ctx, t, review, true, watchedNamespaceAccess(p, ns))
		expect(ctx, t, review, false, forbiddenEverywhere(ns))
	}
	// Peers live in the agent's namespace only.
	expect(ctx, t, review, false, grants("team-a", "ecklink.io", []string{"peers"}, []string{"get", "create"}))
	expect(ctx, t, review, false, []access{{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "team-a"}})

	// Exactly these rules and no more, as the API server resolves them for the namespace.
	rules := resolvedRules(ctx, t, env, client, "team-a")
	want := ruleSet(watchedNamespaceAccess(p, "team-a"))
	if !maps.Equal(rules, want) {
		t.Errorf("rules in team-a differ from what the agent needs:\n extra:   %q\n missing: %q", missing(want, rules), missing(rules, want))
	}
	rules = resolvedRules(ctx, t, env, client, "ecklink-system")
	want = ruleSet(append(agentNamespaceAccess(p, "ecklink-system", "ecklink-agent"), watchedNamespaceAccess(p, "ecklink-system")...))
	if !maps.Equal(rules, want) {
		t.Errorf("rules in ecklink-system differ from what the agent needs:\n extra:   %q\n missing: %q", missing(want, rules), missing(rules, want))
	}
}

// checkNamespacedRBAC checks the release with rbac.namespaced and watchNamespaces team-a, team-b
// (ServiceAccount ecklink-scoped/scoped-ecklink).
func checkNamespacedRBAC(ctx context.Context, t *testing.T, env *testbed.Environment) {
	p := loadPermissions(t)
	client := saClient(ctx, t, env, "ecklink-scoped", "scoped-ecklink")
	self := selfReviewer(client)
	admin := subjectReviewer(env, "ecklink-scoped", "scoped-ecklink")
	for _, review := range []reviewer{self, admin} {
		expect(ctx, t, review, true, agentNamespaceAccess(p, "ecklink-scoped", "scoped-lease"))
		expect(ctx, t, review, true, watchedNamespaceAccess(p, "team-a"))
		expect(ctx, t, review, true, watchedNamespaceAccess(p, "team-b"))
		for _, ns := range []string{"team-a", "team-c", "", "ecklink-scoped"} {
			expect(ctx, t, review, false, forbiddenEverywhere(ns))
		}
		// Nothing in an unlisted namespace, nothing cluster-wide.
		expect(ctx, t, review, false, grants("team-c", "", []string{"secrets", "configmaps"}, []string{"get", "list", "create"}))
		expect(ctx, t, review, false, grants("team-c", "elasticsearch.k8s.elastic.co", []string{"elasticsearches"}, []string{"get", "list", "update"}))
		expect(ctx, t, review, false, grants("", "", []string{"secrets", "configmaps"}, []string{"get", "list", "watch"}))
		expect(ctx, t, review, false, grants("", "elasticsearch.k8s.elastic.co", []string{"elasticsearches"}, []string{"list", "watch"}))
		expect(ctx, t, review, false, grants("kube-system", "", []string{"secrets"}, []string{"get", "list"}))
		// In its own namespace it may not delete Secrets (none of its own are deleted there), nor
		// touch another release's Lease.
		expect(ctx, t, review, false, []access{
			{verb: "delete", resource: "secrets", namespace: "ecklink-scoped"},
			{verb: "get", resource: "configmaps", namespace: "ecklink-scoped", name: "someone-elses"},
			{verb: "list", resource: "configmaps", namespace: "ecklink-scoped"},
			{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: "ecklink-scoped", name: "ecklink-agent"},
		})
	}
	rules := resolvedRules(ctx, t, env, client, "team-c")
	if len(rules) != 0 {
		t.Errorf("rules in unlisted namespace team-c: %q, want none", slices.Sorted(maps.Keys(rules)))
	}
}

// resolvedRules asks the API server (SelfSubjectRulesReview) for the ServiceAccount's resource
// rules in ns, flattened to "verb resource.group[/name]", leaving out those every ServiceAccount
// has (self reviews, public ClusterTrustBundles, ...): the rules of a ServiceAccount without
// bindings.
func resolvedRules(ctx context.Context, t *testing.T, env *testbed.Environment, client kubernetes.Interface, ns string) map[string]bool {
	t.Helper()
	nobody := rulesReview(ctx, t, saClient(ctx, t, env, "team-c", "nobody"), ns)
	rules := rulesReview(ctx, t, client, ns)
	for k := range nobody {
		delete(rules, k)
	}
	return rules
}

func rulesReview(ctx context.Context, t *testing.T, client kubernetes.Interface, ns string) map[string]bool {
	t.Helper()
	r, err := client.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Incomplete {
		t.Fatalf("rules review in %s is incomplete: %s", ns, r.Status.EvaluationError)
	}
	out := map[string]bool{}
	for _, rule := range r.Status.ResourceRules {
		for _, g := range rule.APIGroups {
			names := rule.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					for _, n := range names {
						out[ruleKey(v, g, res, n)] = true
					}
				}
			}
		}
	}
	return out
}

func ruleKey(verb, group, resource, name string) string {
	k := verb + " " + resource
	if group != "" {
		k += "." + group
	}
	if name != "" {
		k += "/" + name
	}
	return k
}

func ruleSet(accesses []access) map[string]bool {
	out := map[string]bool{}
	for _, a := range accesses {
		out[ruleKey(a.verb, a.group, a.resource, a.name)] = true
	}
	return out
}

// missing lists the keys of have that want lacks.
func missing(want, have map[string]bool) []string {
	var out []string
	for k := range have {
		if !want[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
