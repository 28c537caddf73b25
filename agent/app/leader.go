package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/kube"
)

// errLostLeadership ends the process of a replica that lost its lease, so it starts again as a
// standby with clean state.
var errLostLeadership = errors.New("lost the leader lease")

// runElected runs the active part only while this replica holds the Lease. The standby does
// nothing and is not ready, so the peer Service routes to the leader only. The lease is
// released on a clean stop, so a standby takes over at once.
func (a *Agent) runElected(ctx context.Context) error {
	le := a.cfg.LeaderElection
	id := identityForLease()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: le.LeaseName, Namespace: a.cfg.Namespace},
		Client:     a.leaseKube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		activeErr error
		done      = make(chan struct{})
		started   bool
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration.Duration,
		RenewDeadline:   le.RenewDeadline.Duration,
		RetryPeriod:     le.RetryPeriod.Duration,
		ReleaseOnCancel: true,
		Name:            le.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				started = true
				a.log.Info("became the leader", "lease", le.LeaseName, "identity", id)
				a.metrics.Leader(true)
				activeErr = a.runActive(ctx)
				cancel()
				close(done)
			},
			OnStoppedLeading: func() {
				a.metrics.Leader(false)
				cancel()
			},
			OnNewLeader: func(leader string) {
				if leader != id {
					a.log.Info("standing by", "leader", leader)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("failed to set up leader election: %w", err)
	}
	a.metrics.Leader(false)
	elector.Run(ctx)
	if started {
		<-done
	}
	switch {
	case parent.Err() != nil:
		return parent.Err() // asked to stop: the lease was released
	case activeErr != nil && !errors.Is(activeErr, context.Canceled):
		return activeErr
	default:
		return errLostLeadership
	}
}

// newLeaseClient returns the client that renews the Lease: its own connection (a dialer of its
// own keeps client-go from sharing the cached transport of the other clients) and its own rate
// limiter, so that nothing else the agent does with the API, however much, delays a renewal.
// Its requests time out within the renew deadline.
func newLeaseClient(restCfg *rest.Config, le config.LeaderElection) (kubernetes.Interface, error) {
	c := rest.CopyConfig(restCfg)
	// A renewal is one or two requests per retry period; room for four.
	c.QPS = float32(max(5, 4/le.RetryPeriod.Seconds()))
	c.Burst = int(2 * c.QPS)
	c.RateLimiter = nil
	c.Dial = (&net.Dialer{Timeout: le.RenewDeadline.Duration, KeepAlive: 30 * time.Second}).DialContext
	c.Timeout = le.RenewDeadline.Duration
	c.UserAgent += " leader-election"
	kc, err := kube.NewClientset(c)
	if err != nil {
		return nil, fmt.Errorf("failed to create the leader election client: %w", err)
	}
	return kc, nil
}

// identityForLease is the pod name (or host name) with a random suffix, unique per process.
func identityForLease() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return name + "_" + hex.EncodeToString(b)
}
