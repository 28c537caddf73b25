// Package pairing runs pairing, identity rotation and diagnosis end to end on the test bed:
// three environments with their agents as processes, agentctl in process against their
// Kubernetes APIs (KUBECONFIG lists the three kubeconfigs, as a user's would).
//
//   - east accepts pairings: its agent advertises an endpoint;
//   - west only dials: its agent advertises no endpoint, and rotates its agent CA every few
//     minutes (3m CA, 40s leaves) so that rotations happen during the tests;
//   - north advertises its endpoint and keeps the default lifetimes, but redeems pairing tokens
//     for 30s only.
//
// The scenarios run one after the other: some stop agents or pair environments that others use.
package pairing

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/ctl"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

var world *harness.World

const ns = harness.AgentNamespace

func TestMain(m *testing.M) {
	os.Exit(harness.Suite{
		Name: "pairing",
		Options: harness.Options{
			Names:       []string{"east", "west", "north"},
			NoAdvertise: map[string]bool{"west": true},
			AgentArgs: map[string][]string{
				"west": {"--ca-validity", "3m", "--leaf-validity", "40s"},
				"east": {"--leaf-validity", "1m"},
				// TestTokenBinding shows the agent's own cap on a token's life.
				"north": {"--pairing-token-max-ttl", "30s"},
			},
		},
		Setup: func(ctx context.Context, w *harness.World) error {
			for _, c := range w.Clusters {
				if _, err := c.Identity(ctx); err != nil {
					return err
				}
			}
			// agentctl finds the environments as kubectl would: through KUBECONFIG and context names.
			return os.Setenv("KUBECONFIG", w.KubeconfigList())
		},
		LogLines: 120,
	}.Main(m, &world))
}

func requireWorld(t *testing.T) { harness.RequireWorld(t, world) }

// outputs keeps everything agentctl printed, except the tokens `pair token` prints by design,
// so that tests can check that no secret appeared.
var outputs struct {
	sync.Mutex
	all strings.Builder
}

// agentctl runs agentctl in process and returns its exit code, stdout and stderr.
func agentctl(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := ctl.NewCommand(ctl.Options{Out: &out, Err: &errb})
	cmd.SetArgs(args)
	start := time.Now()
	code := ctl.Execute(ctx, cmd)
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if len(a) > 200 {
			shown[i] = "<token>"
		}
	}
	stdout := out.String()
	if len(args) >= 2 && args[0] == "pair" && args[1] == "token" && (len(args) == 2 || args[2] != "list" && args[2] != "revoke") {
		stdout = "<token>\n" // printed by design; kept out of the test log too
	} else {
		outputs.Lock()
		outputs.all.WriteString(out.String() + errb.String())
		outputs.Unlock()
	}
	t.Logf("agentctl %s: exit %d in %s\n%s%s", strings.Join(shown, " "), code, time.Since(start).Round(time.Millisecond), indent(stdout), indent(errb.String()))
	return code, out.String(), errb.String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    | ") + "\n"
}

// waitFor polls cond until it holds (harness.WaitFor).
var waitFor = harness.WaitFor

// peerConnected reports whether Peer name in c is Connected.
func peerConnected(ctx context.Context, c *harness.Cluster, name string) (bool, string) {
	p, err := c.CRDs.Peers().Get(ctx, ns, name)
	if err != nil {
		return false, err.Error()
	}
	return harness.HasCondition(p, v1alpha1.ConditionConnected, metav1.ConditionTrue), harness.DescribeConditions(p)
}

// heartbeatSince reports whether Peer name in c is Connected with a heartbeat newer than since:
// the status of a restarted agent's Peer says Connected until the agent rewrites it.
func heartbeatSince(ctx context.Context, c *harness.Cluster, name string, since time.Time) (bool, string) {
	p, err := c.CRDs.Peers().Get(ctx, ns, name)
	if err != nil {
		return false, err.Error()
	}
	hb := p.Status.LastHeartbeat
	return harness.HasCondition(p, v1alpha1.ConditionConnected, metav1.ConditionTrue) && hb != nil && hb.After(since.Add(time.Second)),
		harness.DescribeConditions(p)
}

// link is an export of "logs" in a remote environment imported by "ccs" of a local one.
type link struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
}

// setupLink creates both Elasticsearch resources in namespace lns, an export granted to the
// local environment and a RemoteCluster under alias.
func setupLink(ctx context.Context, t *testing.T, remote, local *harness.Cluster, lns, alias string) *link {
	t.Helper()
	l := &link{remote: remote, local: local, ns: lns, alias: alias}
	var err error
	if l.remotePod, err = remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: lns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: lns, Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Export(ctx, lns, "logs", "logs", l.remotePod.RemoteClusterAddress(), []string{local.Name}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Import(ctx, lns, alias, "ccs", alias, remote.Name, lns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	return l
}

// connect waits until a probe sees the link connected and the RemoteCluster is Ready.
func (l *link) connect(ctx context.Context, t *testing.T) *harness.Probe {
	t.Helper()
	return connectAlias(ctx, t, l.local, l.localPod, l.ns, l.alias)
}

func connectAlias(ctx context.Context, t *testing.T, local *harness.Cluster, p *pod.Pod, lns, alias string) *harness.Probe {
	t.Helper()
	start := time.Now()
	probe := harness.StartProbe(ctx, p, alias, time.Second)
	t.Cleanup(func() { probe.Stop() })
	if _, err := probe.WaitConnected(ctx, 90*time.Second); err != nil {
		rc, _ := local.CRDs.RemoteClusters().Get(ctx, lns, alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	if _, err := local.WaitRemoteCluster(ctx, lns, alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s connected after %s", alias, time.Since(start).Round(100*time.Millisecond))
	return probe
}

// requireNoDisconnects fails on any disconnected sample after the first connection.
func requireNoDisconnects(t *testing.T, r harness.Result) {
	t.Helper()
	t.Logf("probe: %d samples, %d connected, first connected at %s", r.Samples, r.Connected, r.FirstConnected.Format(time.RFC3339))
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
}

// requireHidden fails if a secret appears in an agent's log, an Event, a Peer, a RemoteCluster
// or ClusterExport (status included), or anything agentctl printed.
func requireHidden(ctx context.Context, t *testing.T, extraLogs []*harness.Agent, secrets ...string) {
	t.Helper()
	var where []string
	check := func(name, text string) {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				where = append(where, name)
				return
			}
		}
	}
	outputs.Lock()
	check("agentctl output", outputs.all.String())
	outputs.Unlock()
	for _, a := range extraLogs {
		check(a.LogPath, a.Log())
	}
	for name, c := range world.Clusters {
		for _, a := range c.Agents {
			check(a.LogPath, a.Log())
		}
		events, err := c.Env.Kube.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			check("event "+name+"/"+e.Namespace+"/"+e.Name, e.Message)
		}
		for kind, list := range map[string]func() (any, error){
			"Peers":          func() (any, error) { return c.CRDs.Peers().List(ctx, "", metav1.ListOptions{}) },
			"RemoteClusters": func() (any, error) { return c.CRDs.RemoteClusters().List(ctx, "", metav1.ListOptions{}) },
			"ClusterExports": func() (any, error) { return c.CRDs.ClusterExports().List(ctx, "", metav1.ListOptions{}) },
		} {
			objs, err := list()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := yaml.Marshal(objs)
			check(kind+" in "+name, string(b))
		}
	}
	if len(where) > 0 {
		t.Fatalf("a secret appears in: %s", strings.Join(where, ", "))
	}
	t.Logf("%d secret(s) absent from agent logs, Events, ecklink objects and agentctl output", len(secrets))
}

// apiKeys returns the encoded API keys the agent of c applied for Elasticsearch lns/es.
func apiKeys(ctx context.Context, t *testing.T, c *harness.Cluster, lns, es string) []string {
	t.Helper()
	s, err := c.Env.Kube.CoreV1().Secrets(lns).Get(ctx, es+"-ecklink-remote-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range s.Data {
		out = append(out, string(v))
	}
	return out
}
