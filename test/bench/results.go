package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecklink/ecklink/test/testbed"
)

// report gathers a run's figures.
type report struct {
	props    []propResult
	connect  []connectResult
	idle     []idleResult
	restarts []restartResult
	kubelet  *kubeletResult
	peers    *peersResult
}

// finish prints the summary, appends the run to the history and fails when a ratio is over the
// limit.
func (r *report) finish(o options) error {
	label := o.label
	if label == "" {
		label = commit()
	}
	line := r.line(label)
	fmt.Println("bench: " + line)
	if o.results != "" {
		if err := appendResult(o.results, line); err != nil {
			return err
		}
		fmt.Printf("bench: appended to %s (commit it with your change)\n", o.results)
	}
	var bad []string
	for _, p := range r.props {
		if p.ratio() > o.maxRatio {
			bad = append(bad, fmt.Sprintf("%d links: ratio_p50=%.2f", p.links, p.ratio()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("REGRESSION: agents/baseline p50 above %.1f (%s): propagation got slower; see test/bench/README.md", o.maxRatio, strings.Join(bad, ", "))
	}
	return nil
}

// line is the run as one Markdown table row: date, commit, then per size p50/p99 against the
// baseline, then scale figures.
func (r *report) line(label string) string {
	var props, scale []string
	for _, p := range r.props {
		props = append(props, fmt.Sprintf("%d: %d/%d ms vs %d ms (x%.2f), last %d vs %d ms, es %d",
			p.links, percentile(p.agents, 50).Milliseconds(), percentile(p.agents, 99).Milliseconds(),
			percentile(p.baseline, 50).Milliseconds(), p.ratio(), percentile(p.agents, 100).Milliseconds(),
			percentile(p.baseline, 100).Milliseconds(), sum(p.calls)))
	}
	for _, c := range r.connect {
		if c.to-c.from > 1 {
			scale = append(scale, fmt.Sprintf("+%d links %s", c.to-c.from, c.d.Round(time.Second)))
		}
	}
	for _, i := range r.idle {
		scale = append(scale, fmt.Sprintf("idle@%d %.0f/%.0f MiB (max %.0f/%.0f) %.2f/%.2f%%", i.links, i.rss["west"], i.rss["east"], i.rssMax["west"], i.rssMax["east"], i.cpu["west"], i.cpu["east"]))
	}
	if k := r.kubelet; k != nil {
		line := fmt.Sprintf("ECK renewed -> pods see it: with bump p50 %s max %s, without p50 %s max %s",
			percentile(k.bumped, 50), percentile(k.bumped, 100), percentile(k.unbumped, 50), percentile(k.unbumped, 100))
		fmt.Println("bench: " + line)
		scale = append(scale, line)
	}
	for _, x := range r.restarts {
		scale = append(scale, fmt.Sprintf("restart %s@%d %s", x.agent, x.links, x.d.Round(time.Second)))
	}
	if p := r.peers; p != nil {
		scale = append(scale, fmt.Sprintf("peers@%dx%d connect %s creds %s idle %.0f MiB %.2f%% (before %.0f MiB %.2f%%), heartbeats %.1f/s, %.1f/%.1f KiB/s in/out",
			p.peers, linksPerFakePeer, p.connect.Round(time.Second), p.credentials.Round(time.Second), p.after.rss, p.after.cpu, p.before.rss, p.before.cpu,
			p.perSecond(p.traffic.HeartbeatsIn), kib(p.perSecond(p.traffic.BytesIn)), kib(p.perSecond(p.traffic.BytesOut))))
	}
	return fmt.Sprintf("| %s | %s | %s | %s |", time.Now().UTC().Format("2006-01-02"), label, strings.Join(props, "; "), strings.Join(scale, "; "))
}

func sum(m map[string]int64) int64 {
	t := int64(0)
	for _, v := range m {
		t += v
	}
	return t
}

// commit names what was measured: the short commit, "+dirty" with uncommitted changes.
func commit() string {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "unknown"
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

func appendResult(path, line string) error {
	if !filepath.IsAbs(path) {
		if root, err := testbed.RepoRoot(); err == nil {
			path = filepath.Join(root, path)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("failed to append to %s (it holds the table header): %w", path, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, line)
	return err
}
