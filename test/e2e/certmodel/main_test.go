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
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

var world *harness.World

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
	dir, err := os.MkdirTemp("", "ecklink-certmodel-")
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
		ECK:         testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
		AgentBinary: bin,
		Dir:         dir,
		// The agents run with exactly what the Helm chart grants its ServiceAccount.
		AgentKubeconfig: harness.ChartServiceAccount(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("certmodel: 2 environments with agents started in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
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
