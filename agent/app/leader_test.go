package app

import (
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ecklink/ecklink/agent/config"
)

// TestLeaseClient: the Lease is renewed on a client of its own, whose rate limiter the agent's
// other requests (whatever their number) never drain, and whose requests end within the renew
// deadline.
func TestLeaseClient(t *testing.T) {
	base := &rest.Config{Host: "https://127.0.0.1:6443", QPS: 50, Burst: 100}
	shared, err := kubernetes.NewForConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		retry   time.Duration
		wantQPS float32
	}{
		{retry: 2 * time.Second, wantQPS: 5},
		{retry: 500 * time.Millisecond, wantQPS: 8},
	}
	for _, tt := range tests {
		le := config.LeaderElection{RetryPeriod: config.Duration{Duration: tt.retry}, RenewDeadline: config.Duration{Duration: 3 * time.Second}}
		lease, err := newLeaseClient(base, le)
		if err != nil {
			t.Fatal(err)
		}
		own := lease.CoordinationV1().RESTClient().GetRateLimiter()
		if own == nil || own == shared.CoordinationV1().RESTClient().GetRateLimiter() || own.QPS() != tt.wantQPS {
			t.Fatalf("retry %s: lease client rate limiter %v (QPS %v), want its own at %v QPS", tt.retry, own, own.QPS(), tt.wantQPS)
		}
	}
	if base.Dial != nil || base.Timeout != 0 || base.QPS != 50 {
		t.Fatal("newLeaseClient changed the agent's own configuration")
	}
}
