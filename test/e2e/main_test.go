// Package e2e runs ecklink end to end on the test bed: real kube-apiservers and the real ECK
// operator per environment, agents as separate processes, esim pods for Elasticsearch. The
// environments are shared by every scenario of the package; scenarios use their own namespaces
// and run side by side.
package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

var world *harness.World

func TestMain(m *testing.M) {
	os.Exit(harness.Suite{
		Name: "e2e",
		Options: harness.Options{
			Names: []string{"west", "east", "north"},
			ECK:   testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
			// With 3-minute CAs a healthy consumer always trusts one that lasts 2 more minutes:
			// warn when it trusts none that lasts 1 (the default, 7 days, would warn forever).
			ExtraAgentArgs: []string{"--peer-lag-trust-expiry", "1m"},
			// The agents run with exactly what the Helm chart grants its ServiceAccount.
			AgentKubeconfig: harness.ChartServiceAccount(),
		},
		Setup: func(ctx context.Context, w *harness.World) error {
			for _, pair := range [][2]string{{"east", "west"}, {"east", "north"}} {
				if err := w.Pair(ctx, pair[0], pair[1]); err != nil {
					return err
				}
			}
			return nil
		},
	}.Main(m, &world))
}

func requireWorld(t *testing.T) { harness.RequireWorld(t, world) }
