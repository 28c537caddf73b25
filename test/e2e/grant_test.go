package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestGrantedLater: a RemoteCluster created before the export that grants it is refused
// (PeerNotGranted), and the exporting agent keeps nothing of the request; once the export
// exists, the exporting agent restarts the stream so that the consumer sends its request
// again, and the link connects.
func TestGrantedLater(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "later", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "later", Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, "later", "west-later", "ccs", "west-later", "west", "later", "logs", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.WaitRemoteCluster(ctx, "later", "west-later", 90*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonPeerNotGranted
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := west.Export(ctx, "later", "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	probe := harness.StartProbe(ctx, local, "west-later", time.Second)
	defer probe.Stop()
	if _, err := probe.WaitConnected(ctx, 3*time.Minute); err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, "later", "west-later")
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	t.Logf("connected %s after the export granting east was created", time.Since(start).Round(time.Millisecond))
	if n := len(remote.Node().APIKeys()); n != 1 {
		t.Errorf("%d API keys in west, want 1", n)
	}
}
