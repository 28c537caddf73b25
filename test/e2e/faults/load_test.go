package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// Load: loadLinks RemoteClusters in east, spread over loadLocals Elasticsearch clusters, all
// importing one export of west.
const (
	loadLinks  = 200
	loadLocals = 4
	loadNS     = "load"
)

// TestLoad200 creates 200 RemoteClusters at once and requires all of them Ready (connected, key
// in effect) within 5 minutes, with exactly one live key each; it reports the agents' RSS. Then
// it restarts east's agent, and west's, and measures the resync: the time until every link was
// reconciled again with the peer's fresh answer (east: every RemoteCluster's status.lastSync
// after the restart; west: every link of the export reported connected again with its key),
// requiring that no key changed and every link stayed Ready.
func TestLoad200(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: loadNS, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	locals := map[string]*pod.Pod{}
	for i := range loadLocals {
		name := fmt.Sprintf("ccs-%d", i)
		if locals[name], err = east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: loadNS, Name: name, Version: "9.3.2"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := west.Export(ctx, loadNS, "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	rss := func(when string) {
		for _, c := range []*harness.Cluster{west, east} {
			r, peak, err := c.Agent.RSS()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: agent %s RSS %s (peak %s)", when, c.Name, mib(r), mib(peak))
		}
	}
	rss("before")
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, loadLinks)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < loadLinks; i += 8 {
				alias := fmt.Sprintf("west-%03d", i)
				es := fmt.Sprintf("ccs-%d", i%loadLocals)
				if _, err := east.Import(ctx, loadNS, alias, es, alias, "west", loadNS, "logs", nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d RemoteClusters created in %s", loadLinks, time.Since(start).Round(100*time.Millisecond))
	converged := waitFor(ctx, t, 5*time.Minute, fmt.Sprintf("%d RemoteClusters Ready", loadLinks), func() (bool, string) {
		ready, _ := loadReady(ctx, east)
		return ready == loadLinks, fmt.Sprintf("%d Ready", ready)
	})
	t.Logf("%d RemoteClusters Ready %s after they were created", loadLinks, time.Since(start).Round(100*time.Millisecond))
	_ = converged
	keys := loadKeys(t, remote)
	if len(keys) != loadLinks {
		t.Fatalf("%d links hold live keys, want %d", len(keys), loadLinks)
	}
	for linkID, ids := range keys {
		if len(ids) != 1 {
			t.Errorf("link %s holds %d live keys: %v", linkID, len(ids), ids)
		}
	}
	for name, p := range locals {
		n := 0
		for _, rc := range p.Node().RemoteClusters() {
			if strings.HasPrefix(rc.Alias, "west-") {
				n++
			}
		}
		if n != loadLinks/loadLocals {
			t.Errorf("%s has %d remote clusters configured, want %d", name, n, loadLinks/loadLocals)
		}
	}
	time.Sleep(2 * resync)
	rss(fmt.Sprintf("%d links, idle", loadLinks))

	refusedBefore := rollbacks(west) + rollbacks(east)
	for _, c := range []*harness.Cluster{east, west} {
		restarted := time.Now()
		if err := c.Agent.Restart(); err != nil {
			t.Fatal(err)
		}
		// Resynced: east applied fresh credentials from west for every link after the restart
		// (status.lastSync is when they arrived) and reconciled it.
		took := waitFor(ctx, t, 5*time.Minute, "every RemoteCluster synced again", func() (bool, string) {
			ready, synced := loadReady(ctx, east, restarted)
			return synced == loadLinks, fmt.Sprintf("%d synced, %d Ready", synced, ready)
		})
		ready, _ := loadReady(ctx, east)
		t.Logf("restart of %s's agent: all %d links resynced in %s; %d Ready", c.Name, loadLinks, took.Round(100*time.Millisecond), ready)
		if ready != loadLinks {
			t.Errorf("after the restart of %s only %d RemoteClusters are Ready", c.Name, ready)
		}
		rss("after the restart of " + c.Name)
	}
	// The restarted agent's updates continue above the sequences its peer applied: none is
	// refused as a rollback (link statuses are published only after the stream opened).
	if n := rollbacks(west) + rollbacks(east) - refusedBefore; n > 0 {
		t.Errorf("%d updates between west and east refused as sequence rollbacks during the restarts", n)
	}
	after := loadKeys(t, remote)
	for linkID, ids := range keys {
		if !slices.Equal(after[linkID], ids) {
			t.Errorf("link %s: keys %v after the restarts, were %v", linkID, after[linkID], ids)
		}
	}

	removeLoad(ctx, t, east, remote)
}

// removeLoad deletes the load RemoteClusters and waits until they are finalized and their keys
// invalidated, so that the suite's later tests (which restart agents) do not resync 200 links
// that nothing needs any more.
func removeLoad(ctx context.Context, t *testing.T, east *harness.Cluster, remote *pod.Pod) {
	t.Helper()
	start := time.Now()
	for i := range loadLinks {
		if err := east.CRDs.RemoteClusters().Delete(ctx, loadNS, fmt.Sprintf("west-%03d", i)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, 3*time.Minute, "load RemoteClusters finalized and their keys invalidated", func() (bool, string) {
		rcs, err := east.CRDs.RemoteClusters().List(ctx, loadNS, metav1.ListOptions{})
		keys := loadKeys(t, remote)
		return err == nil && len(rcs) == 0 && len(keys) == 0, fmt.Sprintf("%d RemoteClusters left (%v), %d links with live keys", len(rcs), err, len(keys))
	})
	t.Logf("%d links removed in %s", loadLinks, time.Since(start).Round(100*time.Millisecond))
}

// loadReady counts the load RemoteClusters that are Ready and, with since, those whose last sync
// with the peer came after it.
func loadReady(ctx context.Context, east *harness.Cluster, since ...time.Time) (ready, synced int) {
	rcs, err := east.CRDs.RemoteClusters().List(ctx, loadNS, metav1.ListOptions{})
	if err != nil {
		return 0, 0
	}
	for _, rc := range rcs {
		if harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue) {
			ready++
		}
		if len(since) > 0 && rc.Status.LastSync != nil && !rc.Status.LastSync.Time.Before(since[0].Truncate(time.Second)) {
			synced++
		}
	}
	return ready, synced
}

// loadKeys maps each load link to its live key ids.
func loadKeys(t *testing.T, remote *pod.Pod) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	now := time.Now()
	for _, k := range remote.Node().APIKeys() {
		meta, _ := k.Metadata["ecklink"].(map[string]any)
		linkID, _ := meta["link"].(string)
		if !strings.HasPrefix(linkID, loadNS+"/") || k.Invalidated || k.Expired(now) {
			continue
		}
		out[linkID] = append(out[linkID], k.ID)
	}
	return out
}

// rollbacks counts the updates between the real agents that c refused as sequence rollbacks
// (the hostile peer's are on purpose).
func rollbacks(c *harness.Cluster) int {
	n := 0
	for _, line := range strings.Split(c.Agent.Log(), "\n") {
		if strings.Contains(line, "reason=SequenceRollback") && !strings.Contains(line, "peer="+hostilePeer) {
			n++
		}
	}
	return n
}
