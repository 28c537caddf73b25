package harness

import (
	"context"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LeaseSampler reads a Lease at a fixed interval and records its holders and renewals, to show
// that a leader kept renewing on time.
type LeaseSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	res     LeaseResult
	last    time.Time
	holders map[string]bool
}

// LeaseResult is what a LeaseSampler saw.
type LeaseResult struct {
	// Samples and Errors count the reads.
	Samples, Errors int
	// Holders are the distinct holder identities, in the order they appeared.
	Holders []string
	// Renewals counts the distinct renew times seen; MaxGap is the longest time between two
	// consecutive ones (the leader's own timestamps, so the sampling interval does not add).
	Renewals int
	MaxGap   time.Duration
}

// SampleLease starts reading Lease ns/name every interval; interval must be well below the
// lease's retry period for MaxGap to see every renewal.
func SampleLease(ctx context.Context, kube kubernetes.Interface, ns, name string, interval time.Duration) *LeaseSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &LeaseSampler{cancel: cancel, done: make(chan struct{}), holders: map[string]bool{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			lease, err := kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
			if ctx.Err() != nil {
				return
			}
			s.record(lease.Spec.HolderIdentity, lease.Spec.RenewTime, err)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *LeaseSampler) record(holder *string, renew *metav1.MicroTime, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Samples++
	if err != nil {
		s.res.Errors++
		return
	}
	if holder != nil && !s.holders[*holder] {
		s.holders[*holder] = true
		s.res.Holders = append(s.res.Holders, *holder)
	}
	if renew == nil || !renew.Time.After(s.last) {
		return
	}
	if !s.last.IsZero() {
		s.res.MaxGap = max(s.res.MaxGap, renew.Time.Sub(s.last))
	}
	s.last = renew.Time
	s.res.Renewals++
}

// Result returns what the sampler saw so far.
func (s *LeaseSampler) Result() LeaseResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.res
	r.Holders = slices.Clone(r.Holders)
	return r
}

// Stop ends the sampling and returns the result.
func (s *LeaseSampler) Stop() LeaseResult {
	s.cancel()
	<-s.done
	return s.Result()
}
