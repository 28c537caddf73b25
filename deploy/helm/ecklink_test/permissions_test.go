package ecklink_test

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/test/testbed"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README's Kubernetes permissions table from deploy/helm/rbac.yaml")

// permission is one entry of deploy/helm/rbac.yaml: verbs on a resource, for a reason.
type permission struct {
	Group    string   `json:"group"`
	Resource string   `json:"resource"`
	Verbs    []string `json:"verbs"`
	Names    []string `json:"names"`
	When     string   `json:"when"`
	Why      string   `json:"why"`
	Code     []string `json:"code"`
}

// permissions is deploy/helm/rbac.yaml: the one list of the agent's Kubernetes API access.
type permissions struct {
	AgentNamespace    []permission `json:"agentNamespace"`
	WatchedNamespaces []permission `json:"watchedNamespaces"`
}

func loadPermissions(t *testing.T) permissions {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chart, "..", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p permissions
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("deploy/helm/rbac.yaml: %v", err)
	}
	return p
}

// chartValues are the values the list depends on.
type chartValues struct {
	leaderElection bool
	leaseName      string
}

// accesses expands entries into single accesses in ns ("" for every namespace).
func accesses(entries []permission, ns string, v chartValues) []access {
	var out []access
	for _, e := range entries {
		if e.When == "leaderElection.enabled" && !v.leaderElection {
			continue
		}
		names := e.Names
		if len(names) == 0 {
			names = []string{""}
		}
		for _, verb := range e.Verbs {
			for _, n := range names {
				n = strings.ReplaceAll(n, "{{ .Values.leaderElection.leaseName }}", v.leaseName)
				out = append(out, access{verb: verb, group: e.Group, resource: e.Resource, namespace: ns, name: n})
			}
		}
	}
	return out
}

// rbacObject is a Role or ClusterRole as rendered.
type rbacObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Rules []struct {
		APIGroups     []string `json:"apiGroups"`
		Resources     []string `json:"resources"`
		ResourceNames []string `json:"resourceNames"`
		Verbs         []string `json:"verbs"`
	} `json:"rules"`
}

// renderedRules renders the chart and returns, per Role namespace (or "cluster" for the
// ClusterRole), the rules flattened to "verb resource.group[/name]".
func renderedRules(t *testing.T, h *helm, args ...string) map[string]map[string]bool {
	t.Helper()
	out, err := h.template(append([]string{"--set", "environment=west"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]map[string]bool{}
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		var o rbacObject
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("rendered document: %v", err)
		}
		if o.Kind != "Role" && o.Kind != "ClusterRole" {
			continue
		}
		scope := o.Metadata.Namespace
		if o.Kind == "ClusterRole" {
			scope = "cluster"
		}
		if rules[scope] == nil {
			rules[scope] = map[string]bool{}
		}
		for _, r := range o.Rules {
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						for _, n := range names {
							rules[scope][ruleKey(v, g, res, n)] = true
						}
					}
				}
			}
		}
	}
	return rules
}

// TestRenderedRBACIsTheList checks the chart's rendered Roles and ClusterRole against
// deploy/helm/rbac.yaml, rule by rule, in both modes: nothing granted that the list (and so no
// code path) does not need, nothing the list needs missing.
func TestRenderedRBACIsTheList(t *testing.T) {
	h := newHelm(t)
	p := loadPermissions(t)
	defaults := chartValues{leaderElection: true, leaseName: "ecklink-agent"}
	tests := []struct {
		name string
		args []string
		v    chartValues
		want map[string][]access
	}{
		{"cluster-wide", nil, defaults, map[string][]access{
			"ecklink-system": accesses(p.AgentNamespace, "", defaults),
			"cluster":        accesses(p.WatchedNamespaces, "", defaults),
		}},
		{"namespaced", []string{"--set", "rbac.namespaced=true", "--set", "watchNamespaces={team-a,team-b}"}, defaults, map[string][]access{
			"ecklink-system": accesses(p.AgentNamespace, "", defaults),
			"team-a":         accesses(p.WatchedNamespaces, "", defaults),
			"team-b":         accesses(p.WatchedNamespaces, "", defaults),
		}},
		{"no leader election", []string{"--set", "leaderElection.enabled=false", "--set", "replicas=1"}, chartValues{}, map[string][]access{
			"ecklink-system": accesses(p.AgentNamespace, "", chartValues{}),
			"cluster":        accesses(p.WatchedNamespaces, "", chartValues{}),
		}},
		{"lease name", []string{"--set", "leaderElection.leaseName=mine"}, chartValues{leaderElection: true, leaseName: "mine"}, map[string][]access{
			"ecklink-system": accesses(p.AgentNamespace, "", chartValues{leaderElection: true, leaseName: "mine"}),
			"cluster":        accesses(p.WatchedNamespaces, "", chartValues{leaderElection: true, leaseName: "mine"}),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := renderedRules(t, h, tc.args...)
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tc.want))) {
				t.Fatalf("roles rendered for %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tc.want)))
			}
			for scope, want := range tc.want {
				w := ruleSet(want)
				if !maps.Equal(got[scope], w) {
					t.Errorf("%s: rendered rules differ from deploy/helm/rbac.yaml:\n extra:   %q\n missing: %q", scope, missing(w, got[scope]), missing(got[scope], w))
				}
			}
		})
	}
}

// TestPermissionsList checks the list itself: every entry says why and names code that exists.
func TestPermissionsList(t *testing.T) {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := loadPermissions(t)
	for _, e := range append(append([]permission{}, p.AgentNamespace...), p.WatchedNamespaces...) {
		if e.Resource == "" || len(e.Verbs) == 0 || e.Why == "" || len(e.Code) == 0 {
			t.Errorf("entry %+v: resource, verbs, why and code are required", e)
		}
		for _, c := range e.Code {
			if _, err := os.Stat(filepath.Join(root, c)); err != nil {
				t.Errorf("%s %v: code %s: %v", e.Resource, e.Verbs, c, err)
			}
		}
	}
}

// clientResources maps the agent's Kubernetes client calls to the resource they reach.
var clientResources = []struct {
	call     *regexp.Regexp
	resource string
}{
	{regexp.MustCompile(`CoreV1\(\)\.Secrets\(|\.Core\(\)\.V1\(\)\.Secrets\(\)`), "secrets"},
	{regexp.MustCompile(`CoreV1\(\)\.ConfigMaps\(|\.Core\(\)\.V1\(\)\.ConfigMaps\(\)`), "configmaps"},
	{regexp.MustCompile(`CoreV1\(\)\.Services\(`), "services"},
	{regexp.MustCompile(`CoreV1\(\)\.Pods\(`), "pods"},
	{regexp.MustCompile(`CoreV1\(\)\.Events\(`), "events"},
	{regexp.MustCompile(`CoordinationV1\(\)`), "leases"},
	{regexp.MustCompile(`ElasticsearchGVR\b`), "elasticsearches"},
	{regexp.MustCompile(`ClusterExportGVR\b`), "clusterexports"},
	{regexp.MustCompile(`RemoteClusterGVR\b`), "remoteclusters"},
	{regexp.MustCompile(`PeerGVR\b`), "peers"},
}

// TestEveryClientCallIsListed greps the agent's code (not agentctl's, not tests) for Kubernetes
// client calls and fails on any resource they reach that deploy/helm/rbac.yaml does not list, and
// on any resource it lists that no code reaches: a new kind of call cannot go in unnoticed.
func TestEveryClientCallIsListed(t *testing.T) {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string][]string{}
	err = filepath.WalkDir(filepath.Join(root, "agent"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, string(filepath.Separator)+"ctl"+string(filepath.Separator)) {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, c := range clientResources {
			if c.call.Match(src) {
				rel, _ := filepath.Rel(root, path)
				used[c.resource] = append(used[c.resource], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := loadPermissions(t)
	listed := map[string]bool{}
	for _, e := range append(append([]permission{}, p.AgentNamespace...), p.WatchedNamespaces...) {
		listed[strings.Split(e.Resource, "/")[0]] = true
	}
	for res, files := range used {
		if !listed[res] {
			t.Errorf("%s is used by %v but not in deploy/helm/rbac.yaml", res, files)
		}
	}
	for res := range listed {
		if used[res] == nil {
			t.Errorf("deploy/helm/rbac.yaml lists %s, which no agent code uses", res)
		}
	}
}

const (
	tableBegin = "<!-- permissions table: generated from deploy/helm/rbac.yaml by go test ./deploy/helm/ecklink_test -run TestREADMEPermissionsTable -update-readme -->"
	tableEnd   = "<!-- end of permissions table -->"
)

// TestREADMEPermissionsTable checks that README's table is the list, rendered.
func TestREADMEPermissionsTable(t *testing.T) {
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), tableBegin)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok || !ok2 {
		t.Fatalf("README.md lacks the permissions table markers %q ... %q", tableBegin, tableEnd)
	}
	want := "\n" + permissionsTable(loadPermissions(t)) + "\n"
	got := rest[:strings.Index(rest, tableEnd)]
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(before+tableBegin+want+tableEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README's permissions table differs from deploy/helm/rbac.yaml (run with -update-readme):\n--- README ---\n%s\n--- list ---\n%s", got, want)
}

// permissionsTable renders the list as README's table.
func permissionsTable(p permissions) string {
	var b strings.Builder
	b.WriteString("| where | resource | verbs | names | cluster-wide (default) | `rbac.namespaced` | why |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	row := func(where, cluster, namespaced string, e permission) {
		res := "`" + e.Resource + "`"
		if e.Group != "" {
			res = "`" + e.Resource + "." + e.Group + "`"
		}
		names := "any"
		if len(e.Names) > 0 {
			names = strings.ReplaceAll(strings.Join(e.Names, ", "), "{{ .Values.leaderElection.leaseName }}", "`leaderElection.leaseName`")
		}
		why := e.Why
		if e.When != "" {
			why += " (with `" + e.When + "`)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", where, res, strings.Join(e.Verbs, ", "), names, cluster, namespaced,
			strings.ReplaceAll(why, "|", "\\|"))
	}
	for _, e := range p.AgentNamespace {
		row("agent", "Role", "Role", e)
	}
	for _, e := range p.WatchedNamespaces {
		row("watched", "ClusterRole: every namespace", "Role in each of `watchNamespaces`", e)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
