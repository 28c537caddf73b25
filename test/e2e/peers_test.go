package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestManyPeersThenUnpeer: east imports from two peers (west and north) into one Elasticsearch.
// Then the Peer north is deleted in east: north invalidates what it issued, east removes the
// north alias and keeps the west one connected throughout.
func TestManyPeersThenUnpeer(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	west, east, north := world.Clusters["west"], world.Clusters["east"], world.Clusters["north"]
	ns := "multi"
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	remotes := map[string]*harness.Cluster{"west": west, "north": north}
	links := map[string]*link{}
	for name, c := range remotes {
		p, err := c.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Export(ctx, ns, "logs", "logs", p.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
			t.Fatal(err)
		}
		alias := name + "-logs"
		if _, err := east.Import(ctx, ns, alias, "ccs", alias, name, ns, "logs", nil); err != nil {
			t.Fatal(err)
		}
		links[name] = &link{remote: c, local: east, remotePod: p, localPod: local, ns: ns, alias: alias}
	}
	probes := map[string]*harness.Probe{}
	for name, l := range links {
		probes[name] = l.connect(ctx, t)
	}
	t.Log("east's Elasticsearch is connected to west and north")

	if err := east.CRDs.Peers().Delete(ctx, "ecklink", "north"); err != nil {
		t.Fatal(err)
	}
	n := links["north"]
	waitFor(ctx, t, 60*time.Second, "north invalidated the keys it issued to east", func() (bool, string) {
		return len(n.activeKeys()) == 0, "active:" + describeKeys(n.activeKeys())
	})
	waitFor(ctx, t, 30*time.Second, "the north alias removed from east", func() (bool, string) {
		return !slices.Contains(n.remoteAliases(), "north-logs"), "still configured"
	})
	waitFor(ctx, t, 30*time.Second, "north ended its side of the peering", func() (bool, string) {
		_, err := north.CRDs.Peers().Get(ctx, "ecklink", "east")
		return apierrors.IsNotFound(err), "Peer east still in north"
	})
	rc, err := east.WaitRemoteCluster(ctx, ns, "north-logs", 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonPeerNotFound
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("north-logs after unpeering:%s", harness.DescribeConditions(rc))
	time.Sleep(5 * time.Second)
	requireNoDisconnects(t, probes["west"].Stop())
	if !slices.Contains(links["west"].remoteAliases(), "west-logs") {
		t.Error("the west alias was removed with the north peering")
	}
}
