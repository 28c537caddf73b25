package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
)

// connectResult is how long links took to connect.
type connectResult struct {
	from, to int
	d        time.Duration
}

// createWorkers create the RemoteClusters of a step side by side.
const createWorkers = 8

// addLinks creates RemoteClusters until there are n and waits until all are connected.
func (b *bed) addLinks(ctx context.Context, n int) (connectResult, error) {
	east := b.w.Clusters["east"]
	res := connectResult{from: b.links, to: n}
	start := time.Now()
	// Created by several clients at once, as a GitOps tool applies a directory: one after the
	// other, creating 800 RemoteClusters on the loaded bench machine took ~45 s of the figure.
	next := make(chan int)
	errs := make(chan error, createWorkers)
	for range createWorkers {
		go func() {
			var first error
			for i := range next {
				if first != nil {
					continue
				}
				name, es := linkName(i)
				if _, err := east.Import(ctx, ns, name, es, name, "west", ns, "logs", nil); err != nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for i := b.links; i < n; i++ {
		next <- i
	}
	close(next)
	for range createWorkers {
		if err := <-errs; err != nil {
			return res, err
		}
	}
	b.links = n
	if err := b.waitAll(ctx, 10*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue)
	}); err != nil {
		return res, err
	}
	res.d = time.Since(start)
	return res, nil
}

// waitConnected waits until the named RemoteClusters are connected.
func (b *bed) waitConnected(ctx context.Context, names []string) error {
	east := b.w.Clusters["east"]
	for _, name := range names {
		if _, err := east.WaitRemoteCluster(ctx, ns, name, 5*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
			return harness.HasCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue)
		}); err != nil {
			return err
		}
	}
	return nil
}

// waitAll waits until ok holds for every benchmark RemoteCluster.
func (b *bed) waitAll(ctx context.Context, within time.Duration, ok func(*v1alpha1.RemoteCluster) bool) error {
	east := b.w.Clusters["east"]
	deadline := time.Now().Add(within)
	for {
		rcs, err := east.CRDs.RemoteClusters().List(ctx, ns, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		waiting := map[string]int{} // why the others are not ready: "Type=Reason" of their first false condition
		for _, rc := range rcs {
			if !strings.HasPrefix(rc.Name, "l-") {
				continue
			}
			if ok(rc) {
				ready++
				continue
			}
			why := "no conditions"
			for _, c := range rc.Status.Conditions {
				if c.Status != metav1.ConditionTrue {
					why = c.Type + "=" + c.Reason
					break
				}
			}
			waiting[why]++
		}
		if ready >= b.links {
			return nil
		}
		if time.Now().After(deadline) {
			var reasons []string
			for why, n := range waiting {
				reasons = append(reasons, fmt.Sprintf("%s: %d", why, n))
			}
			slices.Sort(reasons)
			return fmt.Errorf("only %d of %d RemoteClusters ready after %s (the others: %s)", ready, b.links, within, strings.Join(reasons, ", "))
		}
		time.Sleep(time.Second)
	}
}

// idleResult is each agent's RSS and CPU at idle: RSS sampled every rssEvery over the window,
// its mean and its largest sample (a Go heap breathes between collections, so one sample is a
// draw from that range).
type idleResult struct {
	links            int
	rss, rssMax, cpu map[string]float64
}

// idleSettle is how long the links stay unchanged before an idle window: longer than the
// agents' resync (30s), so the full passes that follow the last change (after a CA update, the
// status of every link) are behind it and the window measures the steady state.
const idleSettle = 40 * time.Second

// rssEvery is how often RSS is sampled in an idle window.
const rssEvery = 2 * time.Second

// idleCost measures each agent's RSS and CPU over window, once every link has its first probe
// verdict (the first round after links connect writes one status per link) and idleSettle
// passed; started is called as the window starts.
func (b *bed) idleCost(ctx context.Context, n int, window time.Duration, started func()) (idleResult, error) {
	res := idleResult{links: n, rss: map[string]float64{}, rssMax: map[string]float64{}, cpu: map[string]float64{}}
	probed := time.Now()
	if err := b.waitAll(ctx, 5*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		return meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionProbeSucceeded) != nil
	}); err != nil {
		return res, fmt.Errorf("failed to wait for the links' probe verdicts: %w", err)
	}
	fmt.Printf("bench: every link of %d has its probe verdict (%s after the step)\n", n, time.Since(probed).Round(time.Second))
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idleSettle):
	}
	started()
	before := map[string]float64{}
	for name, c := range b.w.Clusters {
		before[name] = cpuSeconds(c.Agent.Pid())
	}
	sum, samples := map[string]float64{}, 0
	for end := time.Now().Add(window); time.Now().Before(end); {
		time.Sleep(min(rssEvery, time.Until(end)))
		samples++
		for name, c := range b.w.Clusters {
			r := rssMiB(c.Agent.Pid())
			sum[name] += r
			res.rssMax[name] = max(res.rssMax[name], r)
		}
	}
	for name, c := range b.w.Clusters {
		res.cpu[name] = (cpuSeconds(c.Agent.Pid()) - before[name]) / window.Seconds() * 100
		res.rss[name] = sum[name] / float64(max(samples, 1))
		st := procStatusMiB(c.Agent.Pid())
		fmt.Printf("bench: agent %s idle with %d links: rss_mib=%.1f rss_max_mib=%.1f cpu_percent=%.2f (at the end: anon %.1f MiB, file %.1f MiB)\n",
			name, n, res.rss[name], res.rssMax[name], res.cpu[name], st["RssAnon"], st["RssFile"])
	}
	return res, nil
}

// restartResult is how long the links took to converge after an agent restarted.
type restartResult struct {
	agent string
	links int
	d     time.Duration
}

// restartConvergence kills one agent (SIGKILL, as a crash), starts it again and waits until
// every link received its credentials again (status.lastSync after the restart) and is
// connected.
func (b *bed) restartConvergence(ctx context.Context, name string) (time.Duration, error) {
	a := b.w.Clusters[name].Agent
	start := time.Now()
	a.Kill()
	if err := a.Start(); err != nil {
		return 0, err
	}
	since := start.Truncate(time.Second)
	err := b.waitAll(ctx, 5*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		return rc.Status.LastSync != nil && !rc.Status.LastSync.Time.Before(since) &&
			harness.HasCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue)
	})
	return time.Since(start), err
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

func rssMiB(pid int) float64 { return procStatusMiB(pid)["VmRSS"] }

// procStatusMiB reads the sizes of /proc/<pid>/status in MiB (VmRSS, and its parts RssAnon: the
// heap, stacks and runtime; RssFile: the binary's pages read).
func procStatusMiB(pid int) map[string]float64 {
	out := map[string]float64{}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || !strings.HasSuffix(value, " kB") {
			continue
		}
		var kb float64
		fmt.Sscan(strings.TrimSpace(value), &kb)
		out[key] = kb / 1024
	}
	return out
}
