// Package ha shows the agent's high availability on the test bed: two replicas per environment
// under leader election (a Lease), installed with the Helm chart's permissions. east dials west.
// The scenarios share the environments and run one after the other: the flood attacks west's
// leader, the CA rotation test kills it.
package ha

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// Lease timings of the agents: a standby takes over within leaseDuration (plus a retry
// period) after the leader dies, and a leader renews every retryPeriod.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = time.Second
)

var world *harness.World

func TestMain(m *testing.M) {
	os.Exit(harness.Suite{
		Name: "ha",
		Options: harness.Options{
			Names: []string{"west", "east"}, Replicas: 2,
			LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			ECK:             testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
			AgentKubeconfig: harness.ChartServiceAccount("--set", "replicas=2"),
		},
		Setup: func(ctx context.Context, w *harness.World) error { return w.Pair(ctx, "east", "west") },
	}.Main(m, &world))
}
