package compat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/internal/version"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestRelease runs the release scenarios in order on the same two environments and links.
func TestRelease(t *testing.T) {
	harness.RequireWorld(t, world)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := &scenario{}
	defer s.stopProbes()
	steps := []struct {
		name string
		run  func(context.Context, *testing.T)
	}{
		{"mixed_versions", s.mixedVersions},
		{"upgrade", s.upgrade},
		{"config_reload", s.configReload},
		{"helm_test", s.helmTest},
		{"uninstall", s.uninstall},
	}
	for _, step := range steps {
		if !t.Run(step.name, func(t *testing.T) { step.run(ctx, t) }) {
			t.Fatalf("%s failed: the later scenarios build on it", step.name)
		}
	}
}

// scenario is the state the steps share.
type scenario struct {
	// fromRelease: west (release) exports to east (HEAD); toRelease: east exports to west.
	fromRelease, toRelease *link
	keys                   map[string]string
	// probes sample every link from its first connection to the end of TestRelease.
	probes []*harness.Probe
}

func (s *scenario) stopProbes() {
	for _, p := range s.probes {
		p.Stop()
	}
}

func (s *scenario) links() []*link { return []*link{s.fromRelease, s.toRelease} }

// mixedVersions: the release's agent and HEAD's, paired, link in both directions and stay
// connected through a transport CA rotation on each exporting side.
func (s *scenario) mixedVersions(ctx context.Context, t *testing.T) {
	west, east := world.Clusters["west"], world.Clusters["east"]
	waitFor := harness.WaitFor
	waitFor(ctx, t, 2*time.Minute, "east sees west's agent at version "+release.Version, func() (bool, string) {
		v := peerVersion(ctx, east, "west")
		return v == release.Version, "west reports " + v
	})
	s.fromRelease = newLink(ctx, t, "west", "east", "fromrelease", "west-logs")
	s.toRelease = newLink(ctx, t, "east", "west", "torelease", "east-logs")
	s.keys = map[string]string{}
	for _, l := range s.links() {
		l.connect(ctx, t)
		s.probes = append(s.probes, l.probe)
		s.keys[l.alias] = l.keyID(ctx, t)
	}
	// ECK renews each exporting side's transport CA about every minute; wait for one renewal on
	// both, and for the consuming side to trust the new CA.
	for _, l := range s.links() {
		first, err := l.transportCA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, 4*time.Minute, l.alias+": ECK renews the exporter's CA and the consumer trusts it", func() (bool, string) {
			ca, err := l.transportCA(ctx)
			if err != nil {
				return false, err.Error()
			}
			return ca.Fingerprint != first.Fingerprint && l.localTrusts(ctx, ca), "CA " + ca.Fingerprint[:16]
		})
	}
	for _, l := range s.links() {
		l.requireNoDisconnects(t, "through the CA rotations")
		if got := l.keyID(ctx, t); got != s.keys[l.alias] {
			t.Errorf("%s: API key %s, want %s (no rotation was due)", l.alias, got, s.keys[l.alias])
		}
	}
	_ = west
}

// upgrade: west goes from the release's chart and agent to HEAD's, as the README says, while
// both links are sampled every second: no disconnected sample. Keys HEAD made (east's export)
// stay; the key the release made for west's export belongs to elastic and never expires, so
// HEAD replaces it exactly once, make-before-break, with a key of its own user (README "The
// agent's Elasticsearch user"), and keeps that one.
func (s *scenario) upgrade(ctx context.Context, t *testing.T) {
	west := world.Clusters["west"]
	chart, err := harness.HeadChart()
	if err != nil {
		t.Fatal(err)
	}
	before, samples := map[string][]string{}, map[string]int{}
	for _, l := range s.links() {
		before[l.alias] = l.activeKeys()
		samples[l.alias] = l.probe.Result().Samples
	}
	// The README's Upgrade section, "From 0.1.0", for GitOps tools and any helm: label and
	// annotate the CRDs the release's chart installed from crds/, then upgrade.
	for _, crd := range []string{"peers.ecklink.io", "clusterexports.ecklink.io", "remoteclusters.ecklink.io"} {
		for _, args := range [][]string{
			{"label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite"},
			{"annotate", "crd", crd, "meta.helm.sh/release-name=" + harness.ChartRelease, "meta.helm.sh/release-namespace=" + harness.AgentNamespace, "--overwrite"},
		} {
			kubectl(ctx, t, west.Env, args...)
		}
	}
	if _, err := harness.RunHelm(ctx, west.Env, "upgrade", harness.ChartRelease, chart, "--namespace", harness.AgentNamespace,
		"--reset-then-reuse-values", "--timeout", "2m"); err != nil {
		t.Fatal(err)
	}
	if !crdHasColumn(ctx, t, west.Env, "remoteclusters.ecklink.io", "Reason") {
		t.Error("west's RemoteCluster CRD is not HEAD's after helm upgrade")
	}
	// The Deployment rolls: each agent process is replaced by HEAD's, one at a time.
	for _, a := range west.Agents {
		a.Stop()
		a.Bin = world.AgentBinary()
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	harness.WaitFor(ctx, t, 2*time.Minute, "east sees west's agent at HEAD's version", func() (bool, string) {
		v := peerVersion(ctx, world.Clusters["east"], "west")
		return v == version.Version, "west reports " + v
	})
	old := s.fromRelease
	harness.WaitFor(ctx, t, 4*time.Minute, "the release's key of "+old.alias+" replaced by one of west's agent user", func() (bool, string) {
		live := old.activeKeys()
		k, _ := old.remotePod.Node().APIKey(s.keys[old.alias])
		if !k.Invalidated || len(live) != 1 {
			return false, fmt.Sprintf("release's key invalidated=%v, valid keys %v", k.Invalidated, live)
		}
		n, _ := old.remotePod.Node().APIKey(live[0])
		return n.Username == esuser.Username, "the valid key belongs to " + n.Username
	})
	replacement := old.activeKeys()[0]
	// Give the upgraded agent a few resyncs on the live links.
	time.Sleep(20 * time.Second)
	if n := west.Agent.LogCount("api key made by another user is replaced by one of the agent's user: peer=east link=" + old.ns + "/ccs/" + old.alias + " "); n != 1 {
		t.Errorf("%d replacements of %s's key logged, want 1", n, old.alias)
	}
	s.keys[old.alias] = replacement
	before[old.alias] = []string{replacement}
	for _, l := range s.links() {
		if n := l.probe.Result().Samples - samples[l.alias]; n < 20 {
			t.Errorf("%s: only %d samples during the upgrade", l.alias, n)
		}
		l.requireNoDisconnects(t, "through the upgrade")
		if got := l.keyID(ctx, t); got != s.keys[l.alias] {
			t.Errorf("%s: API key %s applied after the upgrade, want %s", l.alias, got, s.keys[l.alias])
		}
		if after := l.activeKeys(); !slices.Equal(after, before[l.alias]) {
			t.Errorf("%s: valid keys in the exporting Elasticsearch %v after the upgrade, want %v", l.alias, after, before[l.alias])
		}
	}
	p, err := west.CRDs.Peers().Get(ctx, harness.AgentNamespace, "east")
	if err != nil || !harness.HasCondition(p, v1alpha1.ConditionReady, metav1.ConditionTrue) {
		t.Errorf("west's Peer east after the upgrade: %v%s, want Ready (HEAD's Peer condition)", err, harness.DescribeConditions(p))
	}
}

// configReload: with HEAD's chart, elasticsearchEndpoints reach the running agent through the
// chart's ConfigMap (the harness plays the kubelet): a new Elasticsearch's endpoint set by
// `helm upgrade` is reloaded without a restart and without a new pod template.
func (s *scenario) configReload(ctx context.Context, t *testing.T) {
	west := world.Clusters["west"]
	chart, err := harness.HeadChart()
	if err != nil {
		t.Fatal(err)
	}
	if err := west.UseChartConfig(ctx, chart); err != nil {
		t.Fatal(err)
	}
	pid, generation := west.Agent.Pid(), deploymentGeneration(ctx, t, west)
	reloads := west.Agent.LogCount("elasticsearch endpoints reloaded")
	// A new local Elasticsearch in west: its endpoint exists only in the new chart values.
	l := &link{remote: world.Clusters["east"], local: west, remotePod: s.toRelease.remotePod, ns: "reload", alias: "east-logs-2"}
	if l.localPod, err = west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "reload", Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Import(ctx, "reload", l.alias, "ccs", l.alias, "east", s.toRelease.ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	// The export names its consumers by environment; the new link needs no change there.
	l.connect(ctx, t)
	s.probes = append(s.probes, l.probe)
	if west.Agent.Pid() != pid {
		t.Errorf("west's agent restarted (pid %d, was %d): the endpoint must reload", west.Agent.Pid(), pid)
	}
	if west.Agent.LogCount("elasticsearch endpoints reloaded") <= reloads {
		t.Error("west's agent did not log a reload of its endpoints")
	}
	if g := deploymentGeneration(ctx, t, west); g != generation {
		t.Errorf("Deployment generation %d, was %d: changing elasticsearchEndpoints rolled the pods", g, generation)
	}
}

// helmTest: `helm test` on east runs the chart's test pod (the harness plays its kubelet), which
// checks the agent's /readyz and its peer port.
func (s *scenario) helmTest(ctx context.Context, t *testing.T) {
	east := world.Clusters["east"]
	agentctl, err := harness.BuildAgentctl(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		out    []byte
		runErr error
	)
	podCtx, cancelPod := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelPod()
	wg.Go(func() {
		out, runErr = harness.RunHelm(ctx, east.Env, "test", harness.ChartRelease, "--namespace", harness.AgentNamespace, "--timeout", "2m")
		if runErr != nil {
			cancelPod() // helm gave up: the pod will not come
		}
	})
	runner := harness.PodRunner{Cluster: east, Programs: map[string]string{"/usr/local/bin/agentctl": agentctl}}
	podOut, podErr := runner.RunPod(podCtx, harness.ChartRelease+"-test")
	wg.Wait()
	t.Logf("test pod output:\n%s", podOut)
	if podErr != nil || runErr != nil {
		t.Fatalf("helm test: %v %v\n%s", podErr, runErr, out)
	}
	for _, want := range []string{"readyz", "peer-port", `certificate of environment "east", chains to the agent CA bundle`} {
		if !strings.Contains(podOut, want) {
			t.Errorf("test pod output lacks %q", want)
		}
	}
	if !strings.Contains(string(out), "Phase:          Succeeded") && !strings.Contains(string(out), "Phase: Succeeded") {
		t.Errorf("helm test output:\n%s", out)
	}
}

// uninstall: the README's order on east while west keeps running: agentctl uninstall (the
// running agent cleans up each object), helm uninstall, agentctl uninstall again (the agent's
// own objects). Nothing of ecklink is left in east but the kept CRDs; east's keys are
// invalidated and west's peering with east has ended.
func (s *scenario) uninstall(ctx context.Context, t *testing.T) {
	east, west := world.Clusters["east"], world.Clusters["west"]
	s.stopProbes() // removing the links is the point now
	agentctl, err := harness.BuildAgentctl(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, agentctl, append(args, "--kubeconfig", east.Env.AdminKubeconfig, "--timeout", "2m")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("agentctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("uninstall")
	t.Logf("agentctl uninstall:\n%s", out)
	if !strings.Contains(out, "the agent is still deployed") {
		t.Errorf("first uninstall output:\n%s", out)
	}
	if keys := s.toRelease.activeKeys(); len(keys) != 0 {
		t.Errorf("east's export still has valid keys %v in its Elasticsearch", keys)
	}
	if slices.Contains(remoteAliases(s.fromRelease), s.fromRelease.alias) {
		t.Errorf("east's Elasticsearch still has cluster.remote.%s", s.fromRelease.alias)
	}
	harness.WaitFor(ctx, t, time.Minute, "west ends its peering with east", func() (bool, string) {
		_, err := west.CRDs.Peers().Get(ctx, harness.AgentNamespace, "east")
		return err != nil, "west's Peer east is still there"
	})
	if _, err := harness.RunHelm(ctx, east.Env, "uninstall", harness.ChartRelease, "--namespace", harness.AgentNamespace, "--wait"); err != nil {
		t.Fatal(err)
	}
	for _, a := range east.Agents {
		a.Stop() // Kubernetes deletes the pods with the Deployment
	}
	out = run("uninstall")
	t.Logf("agentctl uninstall after helm uninstall:\n%s", out)
	if left := ecklinkObjects(ctx, t, east); len(left) != 0 {
		t.Errorf("left in east after uninstall: %v", left)
	}
	if !crdHasColumn(ctx, t, east.Env, "peers.ecklink.io", "Ready") {
		t.Error("east's CRDs are gone: crds.keep should keep them")
	}
}

func remoteAliases(l *link) []string {
	var out []string
	for _, rc := range l.localPod.Node().RemoteClusters() {
		out = append(out, rc.Alias)
	}
	return out
}

// kubectl runs kubectl as the environment's admin.
func kubectl(ctx context.Context, t *testing.T, env *testbed.Environment, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.AdminKubeconfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
}

func crdHasColumn(ctx context.Context, t *testing.T, env *testbed.Environment, name, column string) bool {
	t.Helper()
	crd, err := env.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		cols, _, _ := unstructured.NestedSlice(v.(map[string]any), "additionalPrinterColumns")
		for _, c := range cols {
			if c.(map[string]any)["name"] == column {
				return true
			}
		}
	}
	return false
}

func deploymentGeneration(ctx context.Context, t *testing.T, c *harness.Cluster) int64 {
	t.Helper()
	d, err := c.Env.Kube.AppsV1().Deployments(harness.AgentNamespace).Get(ctx, harness.ChartRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Generation
}

var _ = filepath.Join
