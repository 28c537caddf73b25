package exporter

import (
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/metrics"
)

// TestRequeue: a pass that only waits for something that comes by itself (errRetry) is retried
// with backoff but not counted as a reconcile error; a real failure is both; a pass that asks to
// come back later is scheduled without backoff.
func TestRequeue(t *testing.T) {
	for _, tc := range []struct {
		name         string
		requeue      time.Duration
		err          error
		wantErrors   string // ecklink_reconcile_errors_total{controller="exporter"}
		wantRequeues int
	}{
		{name: "waiting for ECK's Secret", err: fmt.Errorf("transport CA of ns/logs: %w", errRetry), wantErrors: "", wantRequeues: 1},
		{name: "waiting for the peer's status after a restart (its status queues it)", err: errWaitForStatus, wantErrors: "", wantRequeues: 0},
		{name: "failure", err: errors.New("elasticsearch said no"), wantErrors: "1", wantRequeues: 1},
		{name: "come back later", requeue: time.Minute, wantErrors: "", wantRequeues: 0},
		{name: "done", wantErrors: "", wantRequeues: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHandlerExporter()
			defer e.queue.ShutDown()
			e.cfg.Metrics = metrics.New()
			it := item{kind: "link", peer: "east", link: testLink(1)}
			e.requeue(it, tc.requeue, tc.err)
			if n := e.queue.NumRequeues(it); n != tc.wantRequeues {
				t.Errorf("backoff requeues %d, want %d", n, tc.wantRequeues)
			}
			if got := reconcileErrors(t, e.cfg.Metrics); got != tc.wantErrors {
				t.Errorf("reconcile errors %q, want %q", got, tc.wantErrors)
			}
		})
	}
}

// reconcileErrors reads the exporter's reconcile error counter from the metrics endpoint ("" when
// it was never incremented).
func reconcileErrors(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `ecklink_reconcile_errors_total{controller="exporter"}`) {
			return strings.Fields(line)[1]
		}
	}
	return ""
}
