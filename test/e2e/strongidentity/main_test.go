// Package strongidentity runs ClusterExport spec.strongIdentity end to end on the test bed: two
// real ECK environments (west exports, east imports), agents as processes with exactly the
// chart's RBAC, esim pods whose remote cluster port checks signed requests (9.3+). The scenarios
// check that an export requiring strong identity is never served unsigned: a side below 9.3 is
// refused with a condition that says why; between 9.3 clusters the agents set it up (trust, then
// signing, then the key's identity), a copy of the key with another certificate of the same CA is
// refused, and renewals, CA rotation, enabling and disabling on a live link never disconnect it.
// The signing CA lives 3 minutes and its certificates 1 minute, so that both rotate within a test.
// Run with the test-bed lock:
//
//	flock /tmp/ecklink-testbed.lock go test ./test/e2e/strongidentity -v -timeout 20m
package strongidentity

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
)

var world *harness.World

// Short signing lifetimes: the certificate renews every 40s, the CA rotates every 2 minutes.
const (
	signingCAValidity   = 3 * time.Minute
	signingCertValidity = time.Minute
)

func TestMain(m *testing.M) {
	os.Exit(harness.Suite{
		Name: "strongidentity",
		Options: harness.Options{
			Names:    []string{"west", "east"},
			LogLevel: "debug",
			// The agents run with exactly what the Helm chart grants its ServiceAccount.
			AgentKubeconfig: harness.ChartServiceAccount(),
			ExtraAgentArgs: []string{"--signing-ca-validity", signingCAValidity.String(), "--signing-cert-validity", signingCertValidity.String(),
				"--signing-sync-delay", "2s"},
		},
		Setup: func(ctx context.Context, w *harness.World) error { return w.Pair(ctx, "east", "west") },
		// After every scenario: no signing key (nor any other secret) in a debug log, an Event
		// After every scenario: no signing key (nor any other secret) in a debug log, an Event
		// or a status.
		Passed: harness.SecretScan("strongidentity", "signing-key"),
	}.Main(m, &world))
}

func requireWorld(t *testing.T) { harness.RequireWorld(t, world) }
