package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestConnect: an export in west and a RemoteCluster in east connect east's Elasticsearch to
// west's within 60 s, with no manual step.
func TestConnect(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "connect", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "connect", Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := west.Export(ctx, "connect", "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, "connect", "west-logs", "ccs", "west-logs", "west", "connect", "logs", nil); err != nil {
		t.Fatal(err)
	}
	probe := harness.StartProbe(ctx, local, "west-logs", time.Second)
	defer probe.Stop()
	if _, err := probe.WaitConnected(ctx, 2*time.Minute); err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, "connect", "west-logs")
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	t.Logf("connected %s after the RemoteCluster was created", time.Since(start).Round(100*time.Millisecond))
}
