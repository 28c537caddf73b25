package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSS returns the agent process's resident set size and its peak (VmRSS, VmHWM) in bytes.
func (a *Agent) RSS() (rss, peak int64, err error) {
	pid := a.Pid()
	if pid == 0 {
		return 0, 0, fmt.Errorf("agent not running")
	}
	return ProcessRSS(pid)
}

// ProcessRSS reads VmRSS and VmHWM of a process from /proc, in bytes.
func ProcessRSS(pid int) (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read process status: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("failed to parse %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// Runs counts how often the agent was started.
func (a *Agent) Runs() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs
}

// Wait waits until the agent process ends by itself (a failpoint, a crash) and reports whether
// it did within the time given.
func (a *Agent) Wait(within time.Duration) bool {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(within):
		return false
	}
}

// Metric reads one unlabelled metric (e.g. go_memstats_heap_inuse_bytes) from the /metrics
// endpoint of the cluster's first agent.
func (c *Cluster) Metric(ctx context.Context, name string) (float64, error) {
	text, err := c.Agent.Metrics(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to read metrics of %s: %w", c.Name, err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found on %s", name, c.Name)
}

// Metrics returns the text of the agent's /metrics endpoint (its --metrics-address).
func (a *Agent) Metrics(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Flag("metrics-address")+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("failed to read metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// MetricSum sums the samples of metrics text whose name and labels start with prefix, e.g.
// `ecklink_peer_up{peer="west"}` or `ecklink_pairing_refusals_total`.
func MetricSum(text, prefix string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
