// Package harness runs the product on the test bed: real ECK environments, an ecklink agent per
// environment as a separate process, and esim pods for the Elasticsearch resources. End-to-end
// tests, the benchmark and `make demo` share it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/testbed"
)

// AgentNamespace is where each environment's agent runs.
const AgentNamespace = "ecklink"

// Options configure a World.
type Options struct {
	// Names of the environments, e.g. west, east.
	Names []string
	ECK   testbed.ECKOptions
	// AgentBinary is the agent to run; BuildAgent builds one.
	AgentBinary string
	// Dir holds logs and configs; a temporary folder if empty.
	Dir string
	// Agent tuning for tests.
	HeartbeatInterval time.Duration
	ResyncInterval    time.Duration
	LogLevel          string
	// ExtraAgentArgs are appended to every agent's flags.
	ExtraAgentArgs []string
	// AgentArgs are appended to the flags of the agents of one environment, by name.
	AgentArgs map[string][]string
	// NoAdvertise names environments whose agents advertise no endpoint: they only dial, as an
	// environment that peers cannot reach.
	NoAdvertise map[string]bool
	// AgentKubeconfig returns the kubeconfig an agent uses; the admin's if nil.
	AgentKubeconfig func(ctx context.Context, env *testbed.Environment) (string, error)
	// Replicas of each agent; more than one runs them under leader election (a Lease), each on
	// its own loopback address, all advertised (as a Service in front of them would be).
	Replicas int
	// Lease timings with Replicas > 1.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Pod tuning. VolumeSyncDelay is the modelled kubelet's sync period (esim/pod kubelet.go):
	// 1s here by default, without jitter, so that tests are fast; a test of the kubelet's real
	// delays sets it per Elasticsearch (ElasticsearchWith).
	RestartDelay    time.Duration
	VolumeSyncDelay time.Duration
	Logger          hclog.Logger
}

// World is a set of environments, each with its agent.
type World struct {
	opts     Options
	Dir      string
	Clusters map[string]*Cluster
}

// Cluster is one environment with its agent and simulated Elasticsearch pods.
type Cluster struct {
	Name    string
	Env     *testbed.Environment
	CRDs    *kube.Client
	Agent   *Agent
	AgentIP string
	// Endpoint is where the agent accepts peer streams.
	Endpoint string
	// Agents are all replicas (Agent is the first).
	Agents []*Agent

	world      *World
	configPath string
	mu         sync.Mutex
	endpoints  map[string]string
	pods       map[string]*pod.Pod
}

// BuildAgent builds the agent binary into dir.
func BuildAgent(ctx context.Context, dir string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./agent/cmd/agent")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to build the agent: %w\n%s", err, b)
	}
	return out, nil
}

// Start starts the environments side by side, installs the ecklink CRDs and starts an agent in
// each.
func Start(ctx context.Context, opts Options) (*World, error) {
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "ecklink-e2e-")
		if err != nil {
			return nil, fmt.Errorf("failed to create folder: %w", err)
		}
		opts.Dir = dir
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = 5 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	if opts.RestartDelay == 0 {
		opts.RestartDelay = 3 * time.Second
	}
	if opts.VolumeSyncDelay == 0 {
		opts.VolumeSyncDelay = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	}
	envOpts := make([]testbed.Options, len(opts.Names))
	for i, n := range opts.Names {
		envOpts[i] = testbed.Options{Name: n, ECK: opts.ECK, Dir: filepath.Join(opts.Dir, n)}
		if err := os.MkdirAll(envOpts[i].Dir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create folder: %w", err)
		}
	}
	envs, err := testbed.StartAll(ctx, envOpts...)
	if err != nil {
		return nil, err
	}
	w := &World{opts: opts, Dir: opts.Dir, Clusters: map[string]*Cluster{}}
	crds, err := CRDs()
	if err != nil {
		w.Stop()
		return nil, err
	}
	for _, env := range envs {
		c, err := w.addCluster(ctx, env, crds)
		if err != nil {
			env.Stop()
			w.Stop()
			return nil, err
		}
		w.Clusters[env.Name] = c
	}
	return w, nil
}

// CRDs returns the ecklink CRD manifests from the chart.
func CRDs() ([]byte, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "helm", "ecklink", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("failed to find the ecklink CRDs in deploy/helm/ecklink/crds (run make generate)")
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", f, err)
		}
		all = append(all, append([]byte("\n---\n"), b...)...)
	}
	return all, nil
}

func (w *World) addCluster(ctx context.Context, env *testbed.Environment, crds []byte) (*Cluster, error) {
	if err := env.ApplyCRDs(ctx, crds); err != nil {
		return nil, err
	}
	if err := env.EnsureNamespace(ctx, AgentNamespace); err != nil {
		return nil, err
	}
	client, err := kube.NewClient(kube.ClientConfig{Dynamic: env.Dynamic})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: env.Name, Env: env, CRDs: client, world: w, AgentIP: testbed.LoopbackIP(),
		endpoints: map[string]string{}, pods: map[string]*pod.Pod{}}
	c.Endpoint = c.AgentIP + ":9400"
	replicas := max(w.opts.Replicas, 1)
	ips := []string{c.AgentIP}
	for len(ips) < replicas {
		ips = append(ips, testbed.LoopbackIP())
	}
	c.configPath = filepath.Join(w.Dir, env.Name, "agent.yaml")
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	kubeconfig := env.AdminKubeconfig
	if w.opts.AgentKubeconfig != nil {
		if kubeconfig, err = w.opts.AgentKubeconfig(ctx, env); err != nil {
			return nil, err
		}
	}
	for i, ip := range ips {
		args := []string{
			"--config", c.configPath,
			"--environment", env.Name,
			"--namespace", AgentNamespace,
			"--kubeconfig", kubeconfig,
			"--listen-address", ip + ":9400",
			"--metrics-address", ip + ":9401",
			"--heartbeat-interval", w.opts.HeartbeatInterval.String(),
			"--resync-interval", w.opts.ResyncInterval.String(),
			"--log-level", w.opts.LogLevel,
		}
		for _, other := range ips {
			if !w.opts.NoAdvertise[env.Name] {
				args = append(args, "--advertise-endpoint", other+":9400")
			}
		}
		if replicas > 1 {
			args = append(args, "--leader-elect",
				"--lease-duration", w.opts.LeaseDuration.String(), "--lease-renew-deadline", w.opts.RenewDeadline.String(),
				"--lease-retry-period", w.opts.RetryPeriod.String())
		}
		logName := "agent.log"
		if i > 0 {
			logName = fmt.Sprintf("agent-%d.log", i)
		}
		a := &Agent{Bin: w.opts.AgentBinary, Args: append(append(args, w.opts.ExtraAgentArgs...), w.opts.AgentArgs[env.Name]...), LogPath: filepath.Join(w.Dir, env.Name, logName),
			Env: []string{fmt.Sprintf("POD_NAME=%s-agent-%d", env.Name, i)}}
		if err := a.Start(); err != nil {
			return nil, err
		}
		c.Agents = append(c.Agents, a)
	}
	c.Agent = c.Agents[0]
	return c, nil
}

// writeConfig writes the agent's config file: the endpoint overrides of the esim pods, which
// the agent reloads without a restart.
func (c *Cluster) writeConfig() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := yaml.Marshal(map[string]any{"elasticsearchEndpoints": c.endpoints})
	if err != nil {
		return fmt.Errorf("failed to render agent config: %w", err)
	}
	tmp := c.configPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("failed to write agent config: %w", err)
	}
	return os.Rename(tmp, c.configPath)
}

// Stop stops agents, pods and environments.
func (w *World) Stop() {
	var wg sync.WaitGroup
	for _, c := range w.Clusters {
		wg.Go(func() {
			for _, a := range c.Agents {
				a.Stop()
			}
			c.mu.Lock()
			pods := c.pods
			c.mu.Unlock()
			for _, p := range pods {
				p.Stop()
			}
			c.Env.Stop()
		})
	}
	wg.Wait()
}

// Logs returns each agent's log tail, for failed tests.
func (w *World) Logs(lines int) string {
	var names []string
	for n := range w.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "===== agent %s (last %d lines) =====\n%s\n", n, lines, w.Clusters[n].Agent.LogTail(lines))
	}
	return b.String()
}

// Elasticsearch creates an Elasticsearch resource and its simulated pod on its own loopback
// address (HTTP 9200, remote cluster server 9443, transport 9300), and points the agent at it.
func (c *Cluster) Elasticsearch(ctx context.Context, es testbed.Elasticsearch) (*pod.Pod, error) {
	return c.ElasticsearchWith(ctx, es, nil)
}

// ElasticsearchWith is Elasticsearch with the pod's options changed by tune (e.g. the kubelet
// model as documented: VolumeSyncDelay 0 and Kubelet zero take the kubelet's defaults).
func (c *Cluster) ElasticsearchWith(ctx context.Context, es testbed.Elasticsearch, tune func(*pod.Options)) (*pod.Pod, error) {
	if _, err := c.Env.CreateElasticsearch(ctx, es); err != nil {
		return nil, err
	}
	ip := testbed.LoopbackIP()
	opts := pod.Options{
		Kube: c.Env.Kube, Dynamic: c.Env.Dynamic, Namespace: es.Namespace, Name: es.Name, IP: ip,
		HTTPPort: 9200, RemoteClusterPort: 9443, TransportPort: 9300,
		RestartDelay: c.world.opts.RestartDelay, VolumeSyncDelay: c.world.opts.VolumeSyncDelay,
		Kubelet: pod.Kubelet{Jitter: -1},
		Logger:  c.world.opts.Logger.Named(c.Name),
	}
	if tune != nil {
		tune(&opts)
	}
	p, err := pod.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pods[es.Namespace+"/"+es.Name] = p
	c.endpoints[es.Namespace+"/"+es.Name] = p.HTTPURL()
	c.mu.Unlock()
	if err := c.writeConfig(); err != nil {
		return nil, err
	}
	return p, nil
}

// Pod returns the simulated pod of an Elasticsearch.
func (c *Cluster) Pod(ns, name string) *pod.Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pods[ns+"/"+name]
}

// Identity is an agent's published identity.
type Identity struct {
	Environment string
	Bundle      string
	Endpoints   []string
}

// Identity waits for the agent's identity ConfigMap and reads it.
func (c *Cluster) Identity(ctx context.Context) (Identity, error) {
	for {
		cm, err := c.Env.Kube.CoreV1().ConfigMaps(AgentNamespace).Get(ctx, "ecklink-agent-identity", metav1.GetOptions{})
		if err == nil && cm.Data["bundle.crt"] != "" {
			return Identity{Environment: cm.Data["environment"], Bundle: cm.Data["bundle.crt"], Endpoints: strings.Fields(cm.Data["endpoints"])}, nil
		}
		select {
		case <-ctx.Done():
			return Identity{}, fmt.Errorf("agent %s published no identity: %w (agent log:\n%s)", c.Name, ctx.Err(), c.Agent.LogTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Pair creates the two Peer objects from the agents' identities, as `agentctl pair` does in
// direct mode: dialer dials acceptor.
func (w *World) Pair(ctx context.Context, dialer, acceptor string) error {
	d, a := w.Clusters[dialer], w.Clusters[acceptor]
	if d == nil || a == nil {
		return errors.New("unknown environment")
	}
	did, err := d.Identity(ctx)
	if err != nil {
		return err
	}
	aid, err := a.Identity(ctx)
	if err != nil {
		return err
	}
	if err := createPeer(ctx, d, aid, true); err != nil {
		return err
	}
	return createPeer(ctx, a, did, false)
}

func createPeer(ctx context.Context, in *Cluster, of Identity, dial bool) error {
	p := &v1alpha1.Peer{
		ObjectMeta: metav1.ObjectMeta{Name: of.Environment, Namespace: AgentNamespace},
		Spec:       v1alpha1.PeerSpec{Environment: of.Environment, CABundle: of.Bundle, Endpoints: of.Endpoints, Dial: dial},
	}
	if _, err := in.CRDs.Peers().Create(ctx, p); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create Peer %s in %s: %w", of.Environment, in.Name, err)
	}
	return nil
}

// Leader returns the replica holding the agent's Lease, or nil.
func (c *Cluster) Leader(ctx context.Context) *Agent {
	lease, err := c.Env.Kube.CoordinationV1().Leases(AgentNamespace).Get(ctx, "ecklink-agent", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return nil
	}
	for i, a := range c.Agents {
		if strings.HasPrefix(*lease.Spec.HolderIdentity, fmt.Sprintf("%s-agent-%d_", c.Name, i)) && a.Running() {
			return a
		}
	}
	return nil
}

// AgentBinary is the agent binary the world runs (agentctl is built next to it when present).
func (w *World) AgentBinary() string { return w.opts.AgentBinary }
