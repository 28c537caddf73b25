package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
)

// requestLog records when the agent's requests reached a faulted pod.
type requestLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (r *requestLog) fault(status int, delay time.Duration) pod.HTTPFault {
	return func(*http.Request) (int, time.Duration) {
		r.mu.Lock()
		r.times = append(r.times, time.Now())
		r.mu.Unlock()
		return status, delay
	}
}

// gaps returns the number of requests and the longest gap between two of them.
func (r *requestLog) gaps() (int, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(r.times); i++ {
		longest = max(longest, r.times[i].Sub(r.times[i-1]))
	}
	return len(r.times), longest
}

// retryCap is the longest the agent waits between two attempts at one object: the workqueue's
// backoff cap (30s), or the resync period if shorter.
var retryCap = min(30*time.Second, resync)

// TestElasticsearchTrouble makes east's local Elasticsearch answer 500, then 429, then not answer
// at all (requests hang), then close its port, 40s each; then west's exported Elasticsearch
// answer 503 and close its port while the export's access changes. Each time the agent keeps
// retrying without a hot loop (requests are counted, gaps stay under the backoff cap), the
// RemoteCluster or ClusterExport conditions name the Elasticsearch problem, and when it is back
// the state converges: Ready again, the access change applied in place, one key.
func TestElasticsearchTrouble(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l := newLink(ctx, t, "estrouble", "west-es", nil)
	l.connect(ctx, t, 2*time.Minute).Stop() // no probe during the faults: only the agent calls
	key := l.requireNoLeakedKey(ctx, t, time.Minute)
	const hold = 40 * time.Second

	for _, phase := range []struct {
		name  string
		set   func(*requestLog)
		clear func()
		want  string // in the condition message
	}{
		{"500", func(r *requestLog) { l.localPod.SetHTTPFault(r.fault(500, 0)) }, func() { l.localPod.SetHTTPFault(nil) }, "returned 500"},
		{"429", func(r *requestLog) { l.localPod.SetHTTPFault(r.fault(429, 0)) }, func() { l.localPod.SetHTTPFault(nil) }, "returned 429 es_rejected_execution_exception"},
		{"hang", func(r *requestLog) { l.localPod.SetHTTPFault(r.fault(0, 10*time.Minute)) }, func() { l.localPod.SetHTTPFault(nil) }, "deadline exceeded"},
		{"closed", func(*requestLog) {
			if err := l.localPod.CloseHTTP(); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := l.localPod.ReopenHTTP(); err != nil {
				t.Fatal(err)
			}
		}, "connection refused"},
	} {
		t.Run("local/"+phase.name, func(t *testing.T) {
			r := &requestLog{}
			start := time.Now()
			phase.set(r)
			cleared := false
			defer func() {
				if !cleared {
					phase.clear()
				}
			}()
			var other *link
			if phase.name == "hang" {
				// A hanging Elasticsearch must not hold up the links of the others.
				other = newLink(ctx, t, "estrouble-other", "west-other", nil)
			}
			reported := waitFor(ctx, t, hold+30*time.Second, "RemoteCluster names the problem", func() (bool, string) {
				rc, err := l.rc(ctx)
				if err != nil {
					return false, err.Error()
				}
				c := harness.Condition(rc, v1alpha1.ConditionReady)
				return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonElasticsearchUnavailable &&
					strings.Contains(c.Message, phase.want), harness.DescribeConditions(rc)
			})
			rc, _ := l.rc(ctx)
			t.Logf("%s: reported after %s: %s", phase.name, reported.Round(100*time.Millisecond), harness.Condition(rc, v1alpha1.ConditionReady).Message)
			if other != nil {
				p := other.connect(ctx, t, 45*time.Second)
				t.Logf("%s: another link connected %s after the fault began", phase.name, time.Since(start).Round(100*time.Millisecond))
				p.Stop()
			}
			time.Sleep(time.Until(start.Add(hold)))
			n, longest := r.gaps()
			phase.clear()
			cleared = true
			clearedAt := time.Now()
			recovered := waitFor(ctx, t, 2*retryCap+30*time.Second, "RemoteCluster Ready again", func() (bool, string) {
				rc, err := l.rc(ctx)
				if err != nil {
					return false, err.Error()
				}
				return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue), harness.DescribeConditions(rc)
			})
			t.Logf("%s: %d requests in %s (longest gap %s); Ready again %s after the fault cleared",
				phase.name, n, clearedAt.Sub(start).Round(time.Second), longest.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
			if perSecond := float64(n) / clearedAt.Sub(start).Seconds(); perSecond > 2 {
				t.Errorf("%s: %.1f requests per second while failing: a hot loop", phase.name, perSecond)
			}
			if phase.name != "hang" && phase.name != "closed" && n > 1 && longest > retryCap+5*time.Second {
				t.Errorf("%s: the agent waited %s between two attempts, more than the cap %s", phase.name, longest, retryCap)
			}
			if other != nil {
				other.deleteLink(ctx, t)
			}
		})
	}
	if got := l.requireNoLeakedKey(ctx, t, time.Minute); got.ID != key.ID {
		t.Errorf("the local trouble changed the key: %s, was %s", got.ID, key.ID)
	}

	// The exported Elasticsearch: the access changes while it fails.
	access := []string{"logs-*", "metrics-*"}
	for _, phase := range []struct {
		name  string
		set   func(*requestLog)
		clear func()
		want  string
	}{
		{"503", func(r *requestLog) { l.remotePod.SetHTTPFault(r.fault(503, 0)) }, func() { l.remotePod.SetHTTPFault(nil) }, "returned 503"},
		{"closed", func(*requestLog) {
			if err := l.remotePod.CloseHTTP(); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := l.remotePod.ReopenHTTP(); err != nil {
				t.Fatal(err)
			}
		}, "connection refused"},
	} {
		t.Run("remote/"+phase.name, func(t *testing.T) {
			r := &requestLog{}
			start := time.Now()
			phase.set(r)
			cleared := false
			defer func() {
				if !cleared {
					phase.clear()
				}
			}()
			// The agent writes the export's status meanwhile: retried on conflict.
			if err := l.remote.UpdateClusterExport(ctx, l.ns, "logs", func(exp *v1alpha1.ClusterExport) {
				exp.Spec.Access.Search[0].Names = access
			}); err != nil {
				t.Fatal(err)
			}
			reported := waitFor(ctx, t, hold+30*time.Second, "ClusterExport names the problem", func() (bool, string) {
				exp, err := l.remote.CRDs.ClusterExports().Get(ctx, l.ns, "logs")
				if err != nil {
					return false, err.Error()
				}
				c := harness.Condition(exp, v1alpha1.ConditionKeysManaged)
				ready := harness.Condition(exp, v1alpha1.ConditionReady)
				return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonElasticsearchUnavailable &&
					strings.Contains(c.Message, phase.want) && ready != nil && ready.Status == metav1.ConditionFalse, harness.DescribeConditions(exp)
			})
			exp, _ := l.remote.CRDs.ClusterExports().Get(ctx, l.ns, "logs")
			t.Logf("remote %s: reported after %s: %s", phase.name, reported.Round(100*time.Millisecond), harness.Condition(exp, v1alpha1.ConditionKeysManaged).Message)
			time.Sleep(time.Until(start.Add(hold)))
			n, longest := r.gaps()
			phase.clear()
			cleared = true
			recovered := waitFor(ctx, t, 2*retryCap+30*time.Second, "access updated in place and the export Ready", func() (bool, string) {
				k, _ := l.remotePod.Node().APIKey(key.ID)
				exp, err := l.remote.CRDs.ClusterExports().Get(ctx, l.ns, "logs")
				if err != nil || k.Access == nil || len(k.Access.Search) == 0 {
					return false, fmt.Sprint(err)
				}
				return strings.Join(k.Access.Search[0].Names, ",") == strings.Join(access, ",") &&
					harness.HasCondition(exp, v1alpha1.ConditionReady, metav1.ConditionTrue), harness.DescribeConditions(exp)
			})
			t.Logf("remote %s: %d requests in %s (longest gap %s); converged %s after the fault cleared",
				phase.name, n, hold, longest.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
			if perSecond := float64(n) / hold.Seconds(); perSecond > 2 {
				t.Errorf("remote %s: %.1f requests per second while failing: a hot loop", phase.name, perSecond)
			}
			access = append(access, "audit-"+phase.name)
		})
	}
	if got := l.requireNoLeakedKey(ctx, t, time.Minute); got.ID != key.ID {
		t.Errorf("the access changes made a new key %s instead of updating %s in place", got.ID, key.ID)
	}
	l.connect(ctx, t, time.Minute).Stop()
	l.deleteLink(ctx, t)
}
