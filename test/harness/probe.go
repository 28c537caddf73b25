package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/ecklink/ecklink/test/esim/pod"
)

// Probe samples GET /_remote/info of a local Elasticsearch at a fixed interval, through its
// REST API as a user would, and counts disconnected samples after the first connected one.
type Probe struct {
	alias  string
	cancel context.CancelFunc
	done   chan struct{}

	mu           sync.Mutex
	samples      int
	connected    int
	first        time.Time
	disconnected []Sample
	last         bool
	lastAt       time.Time // when the last sample was started
}

// Sample is one failed sample after the link first connected.
type Sample struct {
	At     time.Time
	Reason string
}

// StartProbe starts sampling alias on p every interval, as the elastic user.
func StartProbe(ctx context.Context, p *pod.Pod, alias string, interval time.Duration) *Probe {
	return startProbe(ctx, p, p.Client, alias, interval)
}

// StartProbeAs is StartProbe as another user of the file realm (an Elasticsearch with
// spec.auth.disableElasticUser has no elastic user).
func StartProbeAs(ctx context.Context, p *pod.Pod, username, password, alias string, interval time.Duration) *Probe {
	return startProbe(ctx, p, func(context.Context) (*elasticsearch.Client, error) { return p.ClientAs(username, password) }, alias, interval)
}

func startProbe(ctx context.Context, p *pod.Pod, client func(context.Context) (*elasticsearch.Client, error), alias string, interval time.Duration) *Probe {
	ctx, cancel := context.WithCancel(ctx)
	pr := &Probe{alias: alias, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			at := time.Now()
			ok, reason := sample(ctx, p, client, alias)
			if ctx.Err() != nil {
				return // stopped mid-sample: its failure is the probe's own, not the link's
			}
			pr.record(at, ok, reason)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return pr
}

func (pr *Probe) record(at time.Time, ok bool, reason string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.samples++
	pr.last, pr.lastAt = ok, at
	if ok {
		pr.connected++
		if pr.first.IsZero() {
			pr.first = time.Now()
		}
		return
	}
	if !pr.first.IsZero() {
		pr.disconnected = append(pr.disconnected, Sample{At: time.Now(), Reason: reason})
	}
}

func sample(ctx context.Context, p *pod.Pod, client func(context.Context) (*elasticsearch.Client, error), alias string) (bool, string) {
	c, err := client(ctx)
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/_remote/info", nil)
	resp, err := c.Perform(req)
	if err != nil {
		return false, "GET /_remote/info: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var info map[string]struct {
		Connected bool `json:"connected"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return false, fmt.Sprintf("GET /_remote/info: status %d", resp.StatusCode)
	}
	if !info[alias].Connected {
		return false, "connected: false (" + p.RemoteError(alias) + ")"
	}
	return true, ""
}

// WaitConnected waits until a sample is connected.
func (pr *Probe) WaitConnected(ctx context.Context, within time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := time.After(within)
	for {
		pr.mu.Lock()
		first := pr.first
		pr.mu.Unlock()
		if !first.IsZero() {
			return first.Sub(start), nil
		}
		select {
		case <-deadline:
			return 0, fmt.Errorf("alias %s not connected within %s", pr.alias, within)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Connected reports the last sample.
func (pr *Probe) Connected() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.last
}

// ConnectedSince reports whether the last sample was connected and started after t, so a
// sample taken before a change cannot stand for the state after it.
func (pr *Probe) ConnectedSince(t time.Time) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.last && pr.lastAt.After(t)
}

// Result is what a probe saw.
type Result struct {
	Samples, Connected int
	FirstConnected     time.Time
	Disconnected       []Sample
}

// Result returns what the probe saw so far.
func (pr *Probe) Result() Result {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return Result{Samples: pr.samples, Connected: pr.connected, FirstConnected: pr.first, Disconnected: append([]Sample(nil), pr.disconnected...)}
}

// Stop ends the sampling and returns the result.
func (pr *Probe) Stop() Result {
	pr.cancel()
	<-pr.done
	return pr.Result()
}
