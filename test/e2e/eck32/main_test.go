// Package eck32 runs the core link on the oldest ECK the README states as supported, ECK 3.2
// (bin/elastic-operator-3.2 of `make testbed`): its Elasticsearch has no
// spec.remoteClusterServer.service, so ECK's <es>-es-remote-cluster stays a headless ClusterIP
// Service and the export names the user's own LoadBalancer Service in spec.service.name. One
// world (west exports, east imports, both ECK 3.2), one link, through ECK's transport CA
// rotations. Run with the test-bed lock:
//
//	flock /tmp/ecklink-e2e.lock go test -count=1 ./test/e2e/eck32 -v -timeout 10m
package eck32

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

// eckVersion is the ECK operator of this package's world (test/tools/eck32).
const eckVersion = "3.2"

var world *harness.World

func TestMain(m *testing.M) {
	flag.Parse()
	var bins testbed.Binaries
	if !testing.Short() {
		var err error
		if bins, err = testbed.FindECKBinaries(eckVersion); err != nil {
			fmt.Fprintln(os.Stderr, "eck32:", err)
			os.Exit(1)
		}
	}
	os.Exit(harness.Suite{
		Name: "eck32",
		Options: harness.Options{
			Names:    []string{"west", "east"},
			Binaries: bins,
			// ECK renews the transport CA about every 30s; each CA lives 2 minutes.
			ECK: testbed.ECKOptions{CACertValidity: caValidity, CACertRotateBefore: caValidity - 30*time.Second},
			// The agents run with exactly what the Helm chart grants its ServiceAccount.
			AgentKubeconfig: harness.ChartServiceAccount(),
		},
		Setup: func(ctx context.Context, w *harness.World) error { return w.Pair(ctx, "east", "west") },
	}.Main(m, &world))
}

// caValidity is the transport CA's lifetime that ECK is started with.
const caValidity = 2 * time.Minute
