package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
)

const caSecret = "logs-es-transport-certs-public"

// propResult is one propagation scenario.
type propResult struct {
	links, consumers int
	agents, baseline []time.Duration // until the last ConfigMap of the update held the new CA
	// calls are the Elasticsearch requests made during the scenario, by side and path.
	calls map[string]int64
}

func (r propResult) print() {
	p50, p99, b50, b99 := percentile(r.agents, 50), percentile(r.agents, 99), percentile(r.baseline, 50), percentile(r.baseline, 99)
	fmt.Printf("bench: propagation at %d links (%d consuming Elasticsearch, %d ConfigMap writes per update), %d updates: agents p50=%s p99=%s max=%s; baseline p50=%s p99=%s max=%s\n",
		r.links, r.consumers, r.consumers, len(r.agents), p50, p99, percentile(r.agents, 100), b50, b99, percentile(r.baseline, 100))
	fmt.Printf("bench: links=%d p50_ms=%d p99_ms=%d baseline_p50_ms=%d ratio_p50=%.2f last_ms=%d baseline_last_ms=%d ratio_last=%.2f\n",
		r.links, p50.Milliseconds(), p99.Milliseconds(), b50.Milliseconds(), r.ratio(), percentile(r.agents, 100).Milliseconds(),
		percentile(r.baseline, 100).Milliseconds(), ratio(percentile(r.agents, 100), percentile(r.baseline, 100)))
	keys := make([]string, 0, len(r.calls))
	for k := range r.calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := int64(0)
	for _, k := range keys {
		total += r.calls[k]
		fmt.Printf("bench:   elasticsearch calls at %d links over %d updates: %-60s %d\n", r.links, len(r.agents), k, r.calls[k])
	}
	fmt.Printf("bench: elasticsearch calls at %d links: %d over %d updates (%.1f per update)\n", r.links, total, len(r.agents), float64(total)/float64(max(len(r.agents), 1)))
}

func (r propResult) ratio() float64 {
	return ratio(percentile(r.agents, 50), percentile(r.baseline, 50))
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// propagation writes updates new CAs into west's public transport CA Secret and times when the
// CA ConfigMaps of the consuming Elasticsearch resources of the first n links, and as many
// baseline ConfigMaps, all hold each.
func (b *bed) propagation(ctx context.Context, n, updates int) (propResult, error) {
	res := propResult{links: n, consumers: (n + perConsumer - 1) / perConsumer}
	var agentCMs, baseCMs []string
	for i := range res.consumers {
		agentCMs = append(agentCMs, wiring.CAConfigMapName(consumer(i)))
		baseCMs = append(baseCMs, fmt.Sprintf("baseline-ca-%d", i))
	}
	stop, err := b.startBaseline(ctx, res.consumers)
	if err != nil {
		return res, err
	}
	defer stop()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen, err := b.watchConfigMaps(wctx)
	if err != nil {
		return res, err
	}
	secrets := b.w.Clusters["west"].Env.Kube.CoreV1().Secrets(ns)
	orig, err := secrets.Get(ctx, caSecret, metav1.GetOptions{})
	if err != nil {
		return res, err
	}
	defer b.restoreCA(ctx, orig)
	before := b.calls()
	last := before
	for i := 0; i < updates+3; i++ {
		a, base, err := b.update(ctx, seen, agentCMs, baseCMs, i)
		if err != nil {
			return res, fmt.Errorf("%d links: %w", n, err)
		}
		if i >= 3 { // the first few warm up connections and caches
			res.agents, res.baseline = append(res.agents, a), append(res.baseline, base)
		}
		time.Sleep(200 * time.Millisecond)
		if b.trace {
			last = b.traceUpdate(n, i, a, base, last)
		}
	}
	res.calls = diffCalls(before, b.calls())
	return res, nil
}

// writeCA writes a new CA into west's public transport CA Secret, as ECK does when it renews it.
func (b *bed) writeCA(ctx context.Context, i int) (time.Time, string, error) {
	secrets := b.w.Clusters["west"].Env.Kube.CoreV1().Secrets(ns)
	pemCA, fp, err := newCA(i)
	if err != nil {
		return time.Time{}, "", err
	}
	s, err := secrets.Get(ctx, caSecret, metav1.GetOptions{})
	if err != nil {
		return time.Time{}, "", err
	}
	s.Data["ca.crt"] = pemCA
	start := time.Now()
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return time.Time{}, "", err
	}
	return start, fp, nil
}

func metav1GetOptions() metav1.GetOptions { return metav1.GetOptions{} }

// update writes one new CA and waits until every ConfigMap holds it.
func (b *bed) update(ctx context.Context, seen *seenCAs, agentCMs, baseCMs []string, i int) (time.Duration, time.Duration, error) {
	start, fp, err := b.writeCA(ctx, i)
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a, aok := seen.last(agentCMs, fp)
		base, bok := seen.last(baseCMs, fp)
		if aok && bok {
			return a.Sub(start), base.Sub(start), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, aok := seen.last(agentCMs, fp)
	_, bok := seen.last(baseCMs, fp)
	return 0, 0, fmt.Errorf("update %d not propagated within 30s (agents: %v, baseline: %v)", i, aok, bok)
}

// restoreCA puts the real CA back, so that the links connect again (the merged bundles keep
// only the newest CAs).
func (b *bed) restoreCA(ctx context.Context, orig *corev1.Secret) {
	secrets := b.w.Clusters["west"].Env.Kube.CoreV1().Secrets(ns)
	if s, err := secrets.Get(ctx, caSecret, metav1.GetOptions{}); err == nil {
		s.Data = orig.Data
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, "bench: failed to restore the CA:", err)
		}
	}
}

func (b *bed) startBaseline(ctx context.Context, count int) (func(), error) {
	west, east := b.w.Clusters["west"], b.w.Clusters["east"]
	cmd := exec.CommandContext(ctx, b.baseline, "--from", west.Env.AdminKubeconfig, "--to", east.Env.AdminKubeconfig,
		"--namespace", ns, "--secret", caSecret, "--configmap", "baseline-ca", "--count", fmt.Sprint(count))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the baseline: %w", err)
	}
	time.Sleep(2 * time.Second) // its informer syncs
	return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}

// seenCAs records when each ConfigMap first held each CA fingerprint.
type seenCAs struct {
	mu sync.Mutex
	at map[string]map[string]time.Time
}

func (s *seenCAs) last(cms []string, fp string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, cm := range cms {
		t, ok := s.at[cm][fp]
		if !ok {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

func (b *bed) watchConfigMaps(ctx context.Context) (*seenCAs, error) {
	seen := &seenCAs{at: map[string]map[string]time.Time{}}
	factory := informers.NewSharedInformerFactoryWithOptions(b.w.Clusters["east"].Env.Kube, 0, informers.WithNamespace(ns))
	record := func(obj any) {
		now := time.Now()
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
		if err != nil {
			return
		}
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if seen.at[cm.Name] == nil {
			seen.at[cm.Name] = map[string]time.Time{}
		}
		for _, c := range certs {
			if fp := pemutil.Fingerprint(c); seen.at[cm.Name][fp].IsZero() {
				seen.at[cm.Name][fp] = now
			}
		}
	}
	if _, err := factory.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, n any) { record(n) },
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return seen, nil
}

// calls sums the Elasticsearch requests of every simulated pod, by side and path.
func (b *bed) calls() map[string]int64 {
	out := map[string]int64{}
	for _, side := range []string{"west", "east"} {
		for _, p := range b.w.Clusters[side].Pods() {
			for k, v := range p.Calls() {
				out[side+" "+k] += v
			}
		}
	}
	return out
}

// traceUpdate prints when an update ended, how long it took, and the Elasticsearch calls made
// since the previous one ended, to match against the agents' debug logs.
func (b *bed) traceUpdate(n, i int, a, base time.Duration, before map[string]int64) map[string]int64 {
	now := b.calls()
	d := diffCalls(before, now)
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, fmt.Sprintf("%s=%d", k, d[k]))
	}
	sort.Strings(keys)
	fmt.Printf("bench: trace %s links=%d update=%d agents=%s baseline=%s es=%v\n", time.Now().UTC().Format("15:04:05.000"), n, i,
		a.Round(time.Millisecond), base.Round(time.Millisecond), keys)
	return now
}

func diffCalls(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
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
	idx = min(max(idx, 1), len(s))
	return s[idx-1].Round(time.Millisecond)
}
