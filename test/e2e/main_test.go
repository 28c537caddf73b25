// Package e2e runs ecklink end to end on the test bed: real kube-apiservers and the real ECK
// operator per environment, agents as separate processes, esim pods for Elasticsearch. The
// environments are shared by every scenario of the package; scenarios use their own namespaces
// and run side by side.
package e2e

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
	dir, err := os.MkdirTemp("", "ecklink-e2e-")
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
		Names:       []string{"west", "east", "north"},
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
	fmt.Printf("e2e: 3 environments with agents started in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
	for _, pair := range [][2]string{{"east", "west"}, {"east", "north"}} {
		if err := world.Pair(ctx, pair[0], pair[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			world.Stop()
			return 1
		}
	}
	code := m.Run()
	if code != 0 {
		fmt.Println(world.Logs(80))
	}
	world.Stop()
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
