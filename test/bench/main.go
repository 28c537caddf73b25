// Command bench measures ecklink on the test bed.
//
// Propagation: a new transport CA written into <es>-es-transport-certs-public in west must reach
// the CA ConfigMap of every consuming Elasticsearch in east. It is measured at 1, 50 and 1,000
// links (1,000 spread over 10 consuming Elasticsearch resources), each against a baseline (a
// bare client-go watcher writing as many ConfigMaps, one after the other) measured on the very
// same writes, with the Elasticsearch calls each rotation cost. Scale: how long links take to
// connect, RSS and CPU of each agent at idle with 50, 200 and 1,000 links, and how long all
// 1,000 take to converge after each agent restarts. Peers: west's agent with 100 fake peers of
// 10 links each (peers.go): how long they take to connect and get their credentials, and the
// agent's RSS, CPU and heartbeat traffic at idle.
//
// The bench appends one line per run to test/bench/RESULTS.md (commit it with the change it
// measures: a history that depends on someone pasting figures is not kept) and exits non-zero
// when an agents/baseline p50 ratio exceeds -max-ratio (3), so a regression is seen the day it
// lands. `make test` asserts no timing; this is the place that does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

type options struct {
	updates, updatesLarge int
	sizes                 []int
	idle                  time.Duration
	maxRatio              float64
	results               string
	restarts              bool
	// grow: the links grow 1 -> 50 -> 200 -> 1,000 (with the sizes asked for); off, each size
	// asked for is created in one step from the last (-links 1000 -grow=false: 1,000 links from
	// nothing).
	grow         bool
	agent, label string
	kubelet      int
	peers        int
	// trace: debug logs, kept with the bed's directory, and the calls of each update.
	trace bool
	// profile: CPU profiles of both agents while the links grow past 200 and at idle after it (kept with the bed's
	// directory).
	profile bool
}

func main() {
	var o options
	flag.IntVar(&o.updates, "updates", 60, "CA updates measured at 1 and 50 links")
	flag.IntVar(&o.updatesLarge, "updates-large", 20, "CA updates measured at 1,000 links")
	sizes := flag.String("links", "1,50,1000", "link counts to measure propagation at (1,000 spreads over 10 consuming Elasticsearch; 0: none)")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "idle window for CPU")
	flag.Float64Var(&o.maxRatio, "max-ratio", 3, "fail when an agents/baseline p50 ratio exceeds this")
	flag.StringVar(&o.results, "results", "test/bench/RESULTS.md", "history file to append to (empty: none)")
	flag.BoolVar(&o.restarts, "restarts", true, "measure convergence after each agent restarts, at the largest size")
	flag.BoolVar(&o.grow, "grow", true, "grow the links 1 -> 50 -> 200 -> 1,000 (false: create each size in -links in one step, e.g. -links 1000 -grow=false for 1,000 links from nothing)")
	flag.StringVar(&o.agent, "agent", "", "agent binary to measure (default: build this checkout's)")
	flag.IntVar(&o.kubelet, "kubelet-updates", 4, "CA updates timed to the consuming pods' files under the kubelet model, with and without the pod bump (0: none)")
	flag.IntVar(&o.peers, "peers", 100, fmt.Sprintf("fake peers paired with west's agent, %d links each, at the end: connect time, idle RSS/CPU and heartbeat cost (0: none)", linksPerFakePeer))
	flag.BoolVar(&o.profile, "profile", false, "agents serve /debug/pprof; CPU profiles of both agents are taken while the links grow past 200 and at idle after it (as long as -idle), and kept with the bed's directory")
	flag.BoolVar(&o.trace, "trace", false, "agents log at debug level, the bed's directory (agent logs) is kept, and each update's Elasticsearch calls are printed")
	flag.StringVar(&o.label, "label", "", "what the history row names as measured (default: this checkout's commit)")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		if s == "0" {
			continue // -links 0: no links, e.g. for the peers phase alone
		}
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 || n > maxLinks {
			fmt.Fprintf(os.Stderr, "bench: -links %q: want counts from 1 to %d\n", s, maxLinks)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.peers < 0 || o.peers > maxPeers {
		fmt.Fprintf(os.Stderr, "bench: -peers %d: want 0 to %d\n", o.peers, maxPeers)
		os.Exit(2)
	}
	if o.label == "" {
		// What the agents are built from: the checkout now, not when the run ends (commits made
		// during a long run are not in it).
		o.label = commit()
	}
	rep, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := rep.finish(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const (
	ns = "bench"
	// consumers is how many consuming Elasticsearch resources the links spread over, at most
	// perConsumer links each.
	consumers   = 10
	perConsumer = 100
	maxLinks    = consumers * perConsumer
)

// bed is the running benchmark world.
type bed struct {
	w        *harness.World
	dir      string
	baseline string
	links    int // RemoteClusters created so far
	trace    bool
	profile  bool // CPU profiles of the idle windows (-profile)
}

func run(o options) (*report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	top := 0
	steps := scaleSteps(o.sizes)
	if !o.grow {
		steps = slices.Sorted(slices.Values(o.sizes))
	}
	for _, n := range steps {
		top = max(top, n)
	}
	b, err := setUp(ctx, o.agent, o.trace, o.profile, top)
	if err != nil {
		return nil, err
	}
	b.profile = o.profile
	defer b.w.Stop()
	if o.trace || o.profile {
		fmt.Printf("bench: the agents' logs and profiles stay in %s\n", b.dir)
	} else {
		defer os.RemoveAll(b.dir)
	}
	rep := &report{}
	idleAt := map[int]bool{50: true, 200: true, 1000: true}
	for _, n := range steps {
		var profiled chan struct{}
		if o.profile && n > 200 {
			profiled = b.cpuProfiles(ctx, fmt.Sprintf("cpu-to-%d", n), 30*time.Second)
		}
		took, err := b.addLinks(ctx, n)
		if profiled != nil {
			<-profiled
		}
		if err != nil {
			return rep, err
		}
		fmt.Printf("bench: %d links connected (%d added in %s)\n", n, n-took.from, took.d.Round(time.Second))
		rep.connect = append(rep.connect, took)
		if contains(o.sizes, n) {
			updates := o.updates
			if n > perConsumer {
				updates = o.updatesLarge
			}
			r, err := b.propagation(ctx, n, updates)
			if err != nil {
				return rep, err
			}
			r.print()
			rep.props = append(rep.props, r)
		}
		if idleAt[n] {
			var profiled chan struct{}
			window := func() {
				if o.profile && n > 200 {
					profiled = b.cpuProfiles(ctx, fmt.Sprintf("cpu-idle-%d", n), o.idle)
				}
			}
			ic, err := b.idleCost(ctx, n, o.idle, window)
			if profiled != nil {
				<-profiled
				b.heapProfiles(ctx, fmt.Sprintf("heap-idle-%d", n))
			}
			if err != nil {
				return rep, err
			}
			rep.idle = append(rep.idle, ic)
		}
	}
	if o.kubelet > 0 {
		k, err := b.kubeletDelay(ctx, o.kubelet)
		if err != nil {
			return rep, err
		}
		rep.kubelet = &k
	}
	if o.restarts {
		for _, name := range []string{"east", "west"} {
			d, err := b.restartConvergence(ctx, name)
			if err != nil {
				return rep, err
			}
			fmt.Printf("bench: %d links converged %s after agent %s restarted\n", b.links, d.Round(time.Second), name)
			rep.restarts = append(rep.restarts, restartResult{agent: name, links: b.links, d: d})
		}
	}
	if o.peers > 0 {
		// Last: its 100 streams and 1,000 keys would weigh on every figure above.
		p, err := b.peersCost(ctx, o.peers, o.idle)
		if err != nil {
			return rep, err
		}
		p.print()
		rep.peers = &p
	}
	return rep, nil
}

// scaleSteps are the link counts to reach, in order: the measured sizes and the idle points.
func scaleSteps(sizes []int) []int {
	top := 0
	for _, s := range sizes {
		top = max(top, s)
	}
	var out []int
	for _, s := range []int{1, 50, 200, 1000} {
		if s <= top && (contains(sizes, s) || s == 50 || s == 200 || s == 1000) {
			out = append(out, s)
		}
	}
	for _, s := range sizes {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	slicesSort(out)
	return out
}

// setUp starts the two environments. links is the most links a step reaches: the agents' link
// limits (1,000 per peer and per export by default) are raised above it, for the steps that
// add links beside them (the kubelet step's two); the bench measures scale, not the limits.
func setUp(ctx context.Context, bin string, trace, profile bool, links int) (*bed, error) {
	dir, err := os.MkdirTemp("", "ecklink-bench-")
	if err != nil {
		return nil, err
	}
	if bin == "" {
		if bin, err = harness.BuildAgent(ctx, dir); err != nil {
			return nil, err
		}
	}
	baseline := filepath.Join(dir, "baseline")
	root, _ := testbed.RepoRoot()
	build := exec.CommandContext(ctx, "go", "build", "-o", baseline, "./test/bench/baseline")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("failed to build the baseline: %v\n%s", err, out)
	}
	level := "info"
	if trace {
		level = "debug"
	}
	limit := strconv.Itoa(links + 100)
	extra := []string{"--links-per-peer", limit, "--links-per-export", limit}
	if profile {
		extra = append(extra, "--profiling")
	}
	w, err := harness.Start(ctx, harness.Options{Names: []string{"west", "east"}, AgentBinary: bin, Dir: dir, LogLevel: level,
		HeartbeatInterval: 5 * time.Second, ResyncInterval: 30 * time.Second, ExtraAgentArgs: extra})
	if err != nil {
		return nil, err
	}
	b := &bed{w: w, dir: dir, baseline: baseline, trace: trace}
	if err := b.topology(ctx); err != nil {
		w.Stop()
		return nil, err
	}
	return b, nil
}

// topology pairs the agents, exports west's Elasticsearch "logs" to east and starts east's
// consuming Elasticsearch resources ccs-0 ... ccs-9.
func (b *bed) topology(ctx context.Context) error {
	if err := b.w.Pair(ctx, "east", "west"); err != nil {
		return err
	}
	west, east := b.w.Clusters["west"], b.w.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		return err
	}
	for i := range consumers {
		// A consumer holds up to 100 remotes at 1,000 links: esim re-dials 25 of them per check
		// (each every 4 s) instead of all every second (pod.Options.MaxDialsPerCheck).
		if _, err := east.ElasticsearchWith(ctx, testbed.Elasticsearch{Namespace: ns, Name: consumer(i), Version: "9.3.2"},
			func(o *pod.Options) { o.MaxDialsPerCheck = 25 }); err != nil {
			return err
		}
	}
	if _, err = west.Export(ctx, ns, "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		return err
	}
	// ECK must first aggregate the agent's own Elasticsearch user and its roles into the file
	// realm (agent/esuser): stopped before, west could never create an API key.
	if err := waitFileRealm(ctx, west, "logs"); err != nil {
		return err
	}
	// Only the benchmark writes west's CA Secret from now on: ECK would put its own CA back at
	// once. West needs ECK no more (its objects exist; the test bed's default CA lifetime is a
	// year); east keeps it (it aggregates the keystore the links need).
	fmt.Println("bench: stopping ECK in west so that only the benchmark writes its CA Secret")
	west.Env.StopECK()
	return nil
}

// waitFileRealm waits until ECK put the agent's user, with the API key role an exported
// Elasticsearch needs, into es's file realm Secret.
func waitFileRealm(ctx context.Context, c *harness.Cluster, es string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sec, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, es+"-es-xpack-file-realm", metav1.GetOptions{})
		if err == nil && strings.Contains("\n"+string(sec.Data["users"]), "\n"+esuser.Username+":") &&
			strings.Contains(string(sec.Data["users_roles"]), esuser.RoleAPIKeys+":") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ECK did not put the agent's user %s into %s-es-xpack-file-realm within 3m", esuser.Username, es)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func consumer(i int) string { return fmt.Sprintf("ccs-%d", i) }

// linkName is the RemoteCluster (and alias) of link i; links fill ccs-0 first.
func linkName(i int) (name, es string) { return fmt.Sprintf("l-%04d", i), consumer(i / perConsumer) }

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func slicesSort(s []int) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
