// Command demo runs the whole product locally on the test bed, narrating each step: two ECK
// environments (real kube-apiservers, etcd and the ECK operator), the Helm chart installed into
// both with real helm, the agents running as processes under the chart's ServiceAccount tokens,
// token pairing with agentctl, an export and a RemoteCluster, then a CA rotation by ECK that
// propagates while _remote/info stays connected. Ctrl-C stops everything cleanly.
//
//	go run ./test/demo               # interactive: waits for Ctrl-C at the end
//	go run ./test/demo -non-interactive
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

func main() {
	nonInteractive := flag.Bool("non-interactive", false, "run to the end and exit (for tests and CI)")
	keep := flag.Bool("keep", false, "keep the logs and kubeconfigs folder")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{interactive: !*nonInteractive, keep: *keep, start: time.Now()}
	err := d.run(ctx)
	d.cleanup()
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Println("\ndemo: stopped (Ctrl-C); everything was shut down")
	case err != nil:
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

type demo struct {
	interactive, keep bool
	start             time.Time
	dir               string
	world             *harness.World
	kubeconfig        string
	agentctl          string
	step              int
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Printf("\n\033[1m%d. %s\033[0m  (%s)\n", d.step, fmt.Sprintf(format, args...), time.Since(d.start).Round(time.Second))
}

func (d *demo) note(format string, args ...any) { fmt.Printf("   "+format+"\n", args...) }

// ctl runs agentctl with the demo's kubeconfig (both contexts) and prints what it prints.
func (d *demo) ctl(ctx context.Context, args ...string) (string, error) {
	fmt.Printf("   $ agentctl %s\n", strings.Join(redactToken(args), " "))
	cmd := exec.CommandContext(ctx, d.agentctl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("     " + line)
	}
	if err != nil {
		return string(out), fmt.Errorf("agentctl %s: %w", args[0], err)
	}
	return string(out), nil
}

// token runs `agentctl pair token` in env for peer, which prints the token alone on stdout
// (kept out of the narration: it is a secret until redeemed) and explains on stderr.
func (d *demo) token(ctx context.Context, env, peer string) (string, error) {
	fmt.Printf("   $ TOKEN=$(agentctl pair token --context %s --peer %s --ttl 15m)\n", env, peer)
	cmd := exec.CommandContext(ctx, d.agentctl, "pair", "token", "--context", env, "--peer", peer, "--ttl", "15m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		fmt.Println("     " + line)
	}
	if err != nil {
		return "", fmt.Errorf("agentctl pair token: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// redactToken keeps the one-time token out of the narration (it is a secret until redeemed).
func redactToken(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if i > 0 && out[i-1] == "join" {
			out[i] = "<token>"
		}
	}
	return out
}

func (d *demo) cleanup() {
	if d.world != nil {
		fmt.Println("\ndemo: stopping agents, Elasticsearch pods, ECK operators, kube-apiservers and etcd")
		d.world.Stop()
	}
	if d.dir != "" && !d.keep {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *demo) run(ctx context.Context) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "ecklink-demo-"); err != nil {
		return err
	}
	d.say("Building the agent and agentctl")
	bin, err := harness.BuildAgent(ctx, d.dir)
	if err != nil {
		return err
	}
	if d.agentctl, err = build(ctx, d.dir, "agentctl"); err != nil {
		return err
	}

	d.say("Starting two ECK environments, west and east: each a real etcd, kube-apiserver and ECK operator")
	d.note("ECK runs with --ca-cert-validity=3m --ca-cert-rotate-before=2m, so it renews CAs every minute or so")
	d.note("(the default is a year; the copies users make by hand today break when the old CA expires)")
	d.say("Installing the Helm chart into both with real helm; the agents run as processes under the chart's ServiceAccount")
	d.world, err = harness.Start(ctx, harness.Options{
		Names: []string{"west", "east"}, AgentBinary: bin, Dir: d.dir, LogLevel: "info",
		HeartbeatInterval: 2 * time.Second, ResyncInterval: 10 * time.Second,
		ECK:             testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
		AgentKubeconfig: harness.ChartServiceAccount("--set", "replicas=1"),
	})
	if err != nil {
		return err
	}
	west, east := d.world.Clusters["west"], d.world.Clusters["east"]
	if d.kubeconfig, err = mergeKubeconfigs(d.dir, west.Env, east.Env); err != nil {
		return err
	}
	d.note("west agent: %s (log %s)", west.Endpoint, west.Agent.LogPath)
	d.note("east agent: %s (log %s)", east.Endpoint, east.Agent.LogPath)
	d.note("kubeconfig with contexts west and east: %s", d.kubeconfig)

	d.say("Pairing: west issues a one-time token, east joins with it (only east -> west must be reachable)")
	token, err := d.token(ctx, "west", "east")
	if err != nil {
		return err
	}
	if _, err := d.ctl(ctx, "pair", "join", token, "--context", "east", "--timeout", "2m"); err != nil {
		return err
	}

	d.say("Creating Elasticsearch logs in west (remote cluster server on) and ccs in east")
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "demo", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		return err
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "demo", Name: "ccs", Version: "9.3.2"})
	if err != nil {
		return err
	}
	d.note("(no Elasticsearch can run here: esim answers for each, from the objects ECK created)")

	d.say("west exports logs to east: a ClusterExport (the data owner's decision)")
	if _, err := west.Export(ctx, "demo", "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		return err
	}
	d.note("spec: elasticsearchRef logs, peers [east], access search [logs-*], proxyAddress %s", remote.RemoteClusterAddress())
	d.say("east connects ccs to it under alias west-logs: a RemoteCluster (the consumer's decision)")
	if _, err := east.Import(ctx, "demo", "west-logs", "ccs", "west-logs", "west", "demo", "logs", nil); err != nil {
		return err
	}
	probe := harness.StartProbe(ctx, local, "west-logs", time.Second)
	defer probe.Stop()
	took, err := probe.WaitConnected(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	d.note("GET /_remote/info on ccs: west-logs connected: true, %s after the RemoteCluster was created", took.Round(100*time.Millisecond))
	d.note("no manual step: the agents made the API key in west, the Secret and CA ConfigMap in east,")
	d.note("wired ccs's spec once, and set cluster.remote.west-logs in proxy mode")

	d.say("Status, as an operator sees it")
	if _, err := d.ctl(ctx, "status", "--context", "east"); err != nil {
		return err
	}

	d.say("Waiting for ECK to renew west's transport CA (about a minute), sampling _remote/info every second")
	secret, err := west.Env.Kube.CoreV1().Secrets("demo").Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return err
	}
	before, err := testbed.FirstCertificate(secret.Data["ca.crt"])
	if err != nil {
		return err
	}
	d.note("current CA %s, expires %s", before.Fingerprint[:16], before.NotAfter.Format(time.TimeOnly))
	var after testbed.CAInfo
	for {
		s, err := west.Env.Kube.CoreV1().Secrets("demo").Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
		if err == nil {
			if after, err = testbed.FirstCertificate(s.Data["ca.crt"]); err == nil && after.Fingerprint != before.Fingerprint {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	renewed := time.Now()
	d.note("ECK renewed it: new CA %s, expires %s", after.Fingerprint[:16], after.NotAfter.Format(time.TimeOnly))
	for {
		if trusted(ctx, east, after.Fingerprint) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.note("east's CA ConfigMap holds the new CA %s after the renewal", time.Since(renewed).Round(time.Millisecond))
	rc, err := east.CRDs.RemoteClusters().Get(ctx, "demo", "west-logs")
	if err == nil {
		d.note("RemoteCluster west-logs: Ready=%s", conditionStatus(rc, v1alpha1.ConditionReady))
	}
	r := probe.Result()
	d.note("_remote/info samples so far: %d connected, %d disconnected after the first connection", r.Connected, len(r.Disconnected))
	if len(r.Disconnected) > 0 {
		return fmt.Errorf("_remote/info was disconnected %d times after the first connection, first at %s: %s",
			len(r.Disconnected), r.Disconnected[0].At.Format(time.RFC3339), r.Disconnected[0].Reason)
	}

	d.say("Done: the link follows every rotation; nobody edits anything by hand")
	if !d.interactive {
		return nil
	}
	d.note("Everything keeps running: try `KUBECONFIG=%s %s status --context east`", d.kubeconfig, d.agentctl)
	d.note("Press Ctrl-C to stop.")
	<-ctx.Done()
	return ctx.Err()
}

func build(ctx context.Context, dir, name string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./agent/cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to build %s: %w\n%s", name, err, b)
	}
	return out, nil
}

func trusted(ctx context.Context, c *harness.Cluster, fingerprint string) bool {
	cm, err := c.Env.Kube.CoreV1().ConfigMaps("demo").Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
	if err != nil {
		return false
	}
	certs, _ := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
	for _, cert := range certs {
		if pemutil.Fingerprint(cert) == fingerprint {
			return true
		}
	}
	return false
}

func conditionStatus(rc *v1alpha1.RemoteCluster, t string) string {
	if c := harness.Condition(rc, t); c != nil {
		return string(c.Status)
	}
	return "Unknown"
}
