// Package compat runs the last release and HEAD side by side on the test bed (test/compat,
// docs/compatibility.md): environment west starts with the release's agent, built from
// `git archive` of the release commit, and the release's chart; east runs HEAD's. The scenarios
// of TestRelease run in order on the same links: mixed versions in both directions through CA
// rotations, the chart and agent upgrade of west to HEAD on the live links, the config reload
// through the chart, helm test, and uninstall.
package compat

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/compat"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

var (
	world *harness.World
	// release is the last release; releaseAgent its agent binary.
	release      compat.Release
	releaseAgent string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		if err := prepareRelease(); err != nil {
			fmt.Fprintln(os.Stderr, "compat:", err)
			os.Exit(1)
		}
	}
	releaseChart := ""
	if !testing.Short() {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		releaseChart, err = release.Chart(ctx)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "compat:", err)
			os.Exit(1)
		}
	}
	os.Exit(harness.Suite{
		Name: "compat",
		Options: harness.Options{
			Names: []string{"west", "east"},
			ECK:   testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute},
			// west: the release's agent with the release chart's ServiceAccount; east: HEAD's.
			AgentBinaries:   map[string]string{"west": releaseAgent},
			AgentKubeconfig: harness.ChartServiceAccountFrom(map[string]string{"west": releaseChart}),
		},
		Setup: func(ctx context.Context, w *harness.World) error { return w.Pair(ctx, "east", "west") },
	}.Main(m, &world))
}

// prepareRelease builds the last release's agent (cached under .cache/compat/<sha>).
func prepareRelease() error {
	var err error
	if release, err = compat.Last(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	if releaseAgent, err = release.Binary(ctx, "agent"); err != nil {
		return err
	}
	fmt.Printf("compat: release %s agent ready in %s (%s)\n", release.Version, time.Since(start).Round(time.Second), releaseAgent)
	return nil
}
