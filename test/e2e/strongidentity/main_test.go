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
	"flag"
	"fmt"
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
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ecklink-strongidentity-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin, err := harness.BuildAgent(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	world, err = harness.Start(ctx, harness.Options{
		Names:       []string{"west", "east"},
		AgentBinary: bin,
		Dir:         dir,
		// The agents run with exactly what the Helm chart grants its ServiceAccount.
		AgentKubeconfig: harness.ChartServiceAccount(),
		ExtraAgentArgs: []string{"--signing-ca-validity", signingCAValidity.String(), "--signing-cert-validity", signingCertValidity.String(),
			"--signing-sync-delay", "2s"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("strongidentity: 2 environments with agents started in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
	code := func() int {
		defer world.Stop()
		if err := world.Pair(ctx, "east", "west"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code := m.Run()
		if code != 0 {
			fmt.Println(world.Logs(80))
		}
		return code
	}()
	if code == 0 && os.Getenv("ECKLINK_KEEP_LOGS") == "" {
		_ = os.RemoveAll(dir)
	}
	return code
}

func requireWorld(t *testing.T) {
	t.Helper()
	if world == nil {
		t.Skip("end-to-end test: needs the test bed (not with -short)")
	}
}
