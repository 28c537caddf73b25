// Command bench measures ecklink on the test bed: how fast a new transport CA written into
// <es>-es-transport-certs-public in one environment reaches the peer environment's CA
// ConfigMap through the agents, against a baseline (a bare client-go watcher writing the
// ConfigMap directly) measured on the very same writes; then the agents' RSS and CPU at idle
// with 50 RemoteClusters. The last line is machine-readable.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

func main() {
	updates := flag.Int("updates", 60, "CA updates to measure")
	links := flag.Int("links", 50, "RemoteClusters for the idle measurement")
	idle := flag.Duration("idle", 60*time.Second, "idle window for CPU")
	flag.Parse()
	if err := run(*updates, *links, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(updates, links int, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ecklink-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.BuildAgent(ctx, dir)
	if err != nil {
		return err
	}
	baseline := filepath.Join(dir, "baseline")
	root, _ := testbed.RepoRoot()
	build := exec.CommandContext(ctx, "go", "build", "-o", baseline, "./test/bench/baseline")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build the baseline: %v\n%s", err, out)
	}
	w, err := harness.Start(ctx, harness.Options{Names: []string{"west", "east"}, AgentBinary: bin, Dir: dir, LogLevel: "info",
		HeartbeatInterval: 5 * time.Second, ResyncInterval: 30 * time.Second})
	if err != nil {
		return err
	}
	defer w.Stop()
	if err := w.Pair(ctx, "east", "west"); err != nil {
		return err
	}
	west, east := w.Clusters["west"], w.Clusters["east"]
	const ns = "bench"
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		return err
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"})
	if err != nil {
		return err
	}
	if _, err := west.Export(ctx, ns, "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		return err
	}
	if _, err := east.Import(ctx, ns, "west", "ccs", "west", "west", ns, "logs", nil); err != nil {
		return err
	}
	probe := harness.StartProbe(ctx, local, "west", time.Second)
	if _, err := probe.WaitConnected(ctx, 2*time.Minute); err != nil {
		return err
	}
	probe.Stop()
	fmt.Println("bench: link connected; stopping ECK in west so that only the benchmark writes its CA Secret")
	west.Env.StopECK()

	base := exec.CommandContext(ctx, baseline, "--from", west.Env.AdminKubeconfig, "--to", east.Env.AdminKubeconfig,
		"--namespace", ns, "--secret", "logs-es-transport-certs-public", "--configmap", "baseline-ca")
	base.Stdout, base.Stderr = os.Stdout, os.Stderr
	if err := base.Start(); err != nil {
		return fmt.Errorf("failed to start the baseline: %w", err)
	}
	defer func() { _ = base.Process.Kill(); _ = base.Wait() }()

	agentLat, baseLat, err := measure(ctx, west, east, ns, updates)
	if err != nil {
		return err
	}
	rss, cpu, err := idleCost(ctx, w, ns, links, idle)
	if err != nil {
		return err
	}
	for _, name := range []string{"west", "east"} {
		fmt.Printf("bench: agent %s idle with %d RemoteClusters: rss_mib=%.1f cpu_percent=%.2f\n", name, links, rss[name], cpu[name])
	}
	p50, p99 := percentile(agentLat, 50), percentile(agentLat, 99)
	b50 := percentile(baseLat, 50)
	fmt.Printf("bench: propagation over %d updates: agents p50=%s p99=%s max=%s; baseline p50=%s p99=%s\n", len(agentLat),
		p50, p99, percentile(agentLat, 100), b50, percentile(baseLat, 99))
	fmt.Printf("bench: propagation p50_ms=%d p99_ms=%d baseline_p50_ms=%d ratio_p50=%.2f\n",
		p50.Milliseconds(), p99.Milliseconds(), b50.Milliseconds(), float64(p50)/float64(b50))
	return nil
}

// measure writes new CAs into west's public transport CA Secret and times when east's agent
// ConfigMap and the baseline's ConfigMap first hold each.
func measure(ctx context.Context, west, east *harness.Cluster, ns string, updates int) ([]time.Duration, []time.Duration, error) {
	var mu sync.Mutex
	seen := map[string]map[string]time.Time{} // configmap -> fingerprint -> first seen
	factory := informers.NewSharedInformerFactoryWithOptions(east.Env.Kube, 0, informers.WithNamespace(ns))
	record := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || (cm.Name != "ccs-ecklink-remote-ca" && cm.Name != "baseline-ca") {
			return
		}
		now := time.Now()
		certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[cm.Name] == nil {
			seen[cm.Name] = map[string]time.Time{}
		}
		for _, c := range certs {
			fp := pemutil.Fingerprint(c)
			if _, ok := seen[cm.Name][fp]; !ok {
				seen[cm.Name][fp] = now
			}
		}
	}
	if _, err := factory.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, n any) { record(n) },
	}); err != nil {
		return nil, nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	secrets := west.Env.Kube.CoreV1().Secrets(ns)
	var agentLat, baseLat []time.Duration
	for i := 0; i < updates+5; i++ {
		pemCA, fp, err := newCA(i)
		if err != nil {
			return nil, nil, err
		}
		s, err := secrets.Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		s.Data["ca.crt"] = pemCA
		start := time.Now()
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return nil, nil, err
		}
		deadline := time.Now().Add(10 * time.Second)
		var a, b time.Time
		for time.Now().Before(deadline) && (a.IsZero() || b.IsZero()) {
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			a, b = seen["ccs-ecklink-remote-ca"][fp], seen["baseline-ca"][fp]
			mu.Unlock()
		}
		if a.IsZero() || b.IsZero() {
			return nil, nil, fmt.Errorf("update %d not propagated within 10s (agents: %v, baseline: %v)", i, !a.IsZero(), !b.IsZero())
		}
		if i >= 5 { // the first few warm up connections and caches
			agentLat = append(agentLat, a.Sub(start))
			baseLat = append(baseLat, b.Sub(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return agentLat, baseLat, nil
}

// idleCost creates n RemoteClusters, waits until all are connected, then measures each agent's
// RSS and CPU over the idle window.
func idleCost(ctx context.Context, w *harness.World, ns string, n int, window time.Duration) (map[string]float64, map[string]float64, error) {
	west, east := w.Clusters["west"], w.Clusters["east"]
	if err := west.Env.StartECK(ctx, testbed.ECKOptions{}); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	for i := range n {
		alias := fmt.Sprintf("idle-%02d", i)
		if _, err := east.Import(ctx, ns, alias, "ccs", alias, "west", ns, "logs", nil); err != nil {
			return nil, nil, err
		}
	}
	for {
		rcs, err := east.CRDs.RemoteClusters().List(ctx, ns, metav1.ListOptions{})
		if err != nil {
			return nil, nil, err
		}
		ready := 0
		for _, rc := range rcs {
			if strings.HasPrefix(rc.Name, "idle-") && harness.HasCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue) {
				ready++
			}
		}
		if ready == n {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return nil, nil, fmt.Errorf("only %d of %d RemoteClusters connected after 5m", ready, n)
		}
		time.Sleep(2 * time.Second)
	}
	fmt.Printf("bench: %d RemoteClusters connected in %s\n", n, time.Since(start).Round(time.Second))
	time.Sleep(10 * time.Second)
	before := map[string]float64{}
	for name, c := range w.Clusters {
		before[name] = cpuSeconds(c.Agent.Pid())
	}
	time.Sleep(window)
	rss, cpu := map[string]float64{}, map[string]float64{}
	for name, c := range w.Clusters {
		cpu[name] = (cpuSeconds(c.Agent.Pid()) - before[name]) / window.Seconds() * 100
		rss[name] = rssMiB(c.Agent.Pid())
	}
	return rss, cpu, nil
}

func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data)[strings.LastIndex(string(data), ")")+2:])
	var utime, stime float64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return (utime + stime) / 100 // USER_HZ
}

func rssMiB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), &kb)
			return kb / 1024
		}
	}
	return 0
}

func newCA(i int) ([]byte, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: fmt.Sprintf("bench-ca-%d", i)},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	cert, _ := x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pemutil.Fingerprint(cert), nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := (p*len(s) + 99) / 100
	if idx < 1 {
		idx = 1
	}
	if idx > len(s) {
		idx = len(s)
	}
	return s[idx-1].Round(time.Millisecond)
}
