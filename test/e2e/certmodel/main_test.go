// Package certmodel runs the certificate security model end to end on the test bed: two real
// ECK environments (west exports, east imports) whose operators rotate the transport CAs every
// minute or so (3m validity, rotated 2m before expiry), agents as processes with exactly the
// chart's RBAC, esim pods whose transport port requires a client certificate from a trusted
// transport CA. Scenarios use their own namespaces and run side by side. Run with the test-bed
// lock:
//
//	flock /tmp/ecklink-testbed.lock go test ./test/e2e/certmodel -v -timeout 30m
package certmodel

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
		Name: "certmodel",
		Options: harness.Options{
			Names: []string{"west", "east"},
			ECK:   testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
			// With 3-minute CAs a healthy consumer always trusts one that lasts 2 more minutes:
			// warn when it trusts none that lasts 1 (the default, 7 days, would warn forever;
			// TestCertificateLagWarning).
			ExtraAgentArgs: []string{"--peer-lag-trust-expiry", "1m"},
			// The agents run with exactly what the Helm chart grants its ServiceAccount.
			AgentKubeconfig: harness.ChartServiceAccount(),
			// West exports with the certificate model, which its agent must allow (the chart's
			// certificateModel.enabled); east's agent keeps it off (TestCertificateModelDisabled).
			AgentArgs: map[string][]string{"west": {"--certificate-model"}},
		},
		Setup: func(ctx context.Context, w *harness.World) error { return w.Pair(ctx, "east", "west") },
	}.Main(m, &world))
}

func requireWorld(t *testing.T) { harness.RequireWorld(t, world) }
