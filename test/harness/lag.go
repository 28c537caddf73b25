package harness

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// Pause stops the agent's process (SIGSTOP), as a stuck agent would be: its connections stay
// open and nothing it holds is applied. resume (SIGCONT) may be called more than once.
func (a *Agent) Pause() (resume func(), err error) {
	pid := a.Pid()
	if pid == 0 {
		return nil, errors.New("the agent does not run")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("failed to pause the agent: %w", err)
	}
	resumed := false
	return func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}, nil
}

// RestartWithFlag restarts the agent with --name value for the rest of the test, and when the
// test ends restarts it with the value it had, or unset (the flag's default, which the caller
// names) when it had none.
func (a *Agent) RestartWithFlag(t testing.TB, name, value, unset string) {
	t.Helper()
	before := a.Flag(name)
	if before == "" {
		before = unset
	}
	a.SetFlag(name, value)
	if err := a.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.SetFlag(name, before)
		if err := a.Restart(); err != nil {
			t.Error(err)
		}
	})
}

// PeersCurrent is the PeersCurrent condition of the ClusterExport ns/name in c, or nil.
func (c *Cluster) PeersCurrent(ctx context.Context, ns, name string) *metav1.Condition {
	exp, err := c.CRDs.ClusterExports().Get(ctx, ns, name)
	if err != nil {
		return nil
	}
	return Condition(exp, v1alpha1.ConditionPeersCurrent)
}

// PeerLag is ecklink_link_peer_lag_seconds of peer for the export ns/name, as c's agent
// reports it; -1 when the metrics cannot be read.
func (c *Cluster) PeerLag(ctx context.Context, ns, name, peer string) float64 {
	text, err := c.Agent.Metrics(ctx)
	if err != nil {
		return -1
	}
	return MetricSum(text, fmt.Sprintf(`ecklink_link_peer_lag_seconds{export=%q,export_namespace=%q,peer=%q}`, name, ns, peer))
}

// DescribeCondition is a condition in one line, for a wait's progress.
func DescribeCondition(c *metav1.Condition, t string) string {
	if c == nil {
		return "no " + t + " condition"
	}
	return string(c.Status) + " " + c.Reason + ": " + c.Message
}
