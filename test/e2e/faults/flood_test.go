package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/harness"
)

// floodPeer is the fake peer paired with west (the exporting side) that floods it.
const floodPeer = "trudy"

// Flood sizes: distinct link ids sent over floodSpread (the rate limit lets about 50 a second
// through, so that more than limits.linksPerPeer, 1000 by default, reach the exporter), then
// bigUpdates updates of 2 MiB each.
const (
	floodLinks  = 100000
	floodSpread = 40 * time.Second
	bigUpdates  = 60
	bigSize     = 2 << 20
)

// TestPairedPeerFlood: a paired peer that no export grants sends 100,000 import requests for
// distinct links, then updates of 2 MiB. West keeps nothing of them beyond one bounded refusal
// each (up to limits.linksPerPeer), creates no API key, refuses a request beyond the cap even
// for an export that grants the peer (naming the cap), keeps serving east's links (a new link
// comes up end to end during the flood, the existing one stays connected), and its heap comes
// back within 16 MiB of before.
func TestPairedPeerFlood(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	west := world.Clusters["west"]
	l := newLink(ctx, t, "flood", "west-flood", nil)
	probe := l.connect(ctx, t, 2*time.Minute)
	fake, err := harness.NewFakePeer(ctx, floodPeer)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.PairWith(ctx, west); err != nil {
		t.Fatal(err)
	}
	defer deleteFloodPeer(t)
	defer func() { // east's links go too, so that later scenarios do not carry them
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for _, alias := range []string{l.alias, "west-flood-2"} {
			_ = l.local.CRDs.RemoteClusters().Delete(cctx, l.ns, alias)
		}
		_ = l.remote.CRDs.ClusterExports().Delete(cctx, l.ns, "open")
	}()
	stream, err := fake.Connect(ctx, west, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()

	heap0, err := west.Metric(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		t.Fatal(err)
	}
	rss0, _, err := west.Agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	peak := sampleHeap(ctx, west)

	// 1. 100,000 distinct links, for the export that grants only east. Meanwhile east makes a
	// second link to the same export, which must come up end to end.
	start := time.Now()
	second := &link{remote: l.remote, local: l.local, remotePod: l.remotePod, localPod: l.localPod, ns: l.ns, alias: "west-flood-2"}
	secondUp := make(chan error, 1)
	go func() {
		if _, err := second.local.Import(ctx, second.ns, second.alias, "ccs", second.alias, "west", second.ns, "logs", nil); err != nil {
			secondUp <- err
			return
		}
		_, err := second.local.WaitRemoteCluster(ctx, second.ns, second.alias, 3*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
			return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
		})
		secondUp <- err
	}()
	nonces := make([]string, 0, floodLinks)
	batch := floodLinks / int(floodSpread/(100*time.Millisecond))
	for i := range floodLinks {
		id := &peerv1.Link{LocalNamespace: "flood", LocalElasticsearch: fmt.Sprintf("ccs-%d", i/1000), Alias: fmt.Sprintf("a%d", i)}
		nonces = append(nonces, sendUpdate(t, stream, "import/flood/"+id.LocalElasticsearch+"/"+id.Alias,
			&peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: id, ExportNamespace: "flood", ExportName: "logs", ElasticsearchVersion: "9.3.2"}}))
		if (i+1)%batch == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	reasons := countAnswers(ctx, t, stream, nonces)
	floodTime := time.Since(start)
	t.Logf("%d import requests for distinct links in %s: %v", floodLinks, floodTime.Round(time.Millisecond), reasons)
	if reasons["Ack"] > 0 || reasons[v1alpha1.ReasonPeerNotGranted] <= 1000 || reasons["RateLimited"] == 0 {
		t.Errorf("flood answered %v: want no Ack, PeerNotGranted for more than 1000 (the cap), RateLimited beyond the rate", reasons)
	}
	refusals := 0
	for _, u := range stream.Received() {
		if u.GetRefusal() != nil {
			refusals++
		}
	}
	t.Logf("Refusals sent by west: %d", refusals)
	if refusals > 1000 {
		t.Errorf("west sent %d Refusals, want at most limits.linksPerPeer (1000)", refusals)
	}

	// 2. Updates of 2 MiB, each with one oversized field.
	time.Sleep(3 * time.Second) // the rate limit refills: these reach validation
	big := strings.Repeat("9", bigSize)
	nonces = nonces[:0]
	start = time.Now()
	for i := range bigUpdates {
		id := &peerv1.Link{LocalNamespace: "flood", LocalElasticsearch: "big", Alias: fmt.Sprintf("b%d", i)}
		req := &peerv1.ImportRequest{Link: id, ExportNamespace: "flood", ExportName: "logs"}
		resource := "import/flood/big/" + id.Alias
		var payload any = &peerv1.Update_ImportRequest{ImportRequest: req}
		switch i % 4 {
		case 0:
			req.ElasticsearchVersion = big
		case 1:
			req.TransportCaBundle = []byte(big)
		case 2:
			req.SigningSubject = big
		case 3:
			resource = "status/flood/big/" + id.Alias
			payload = &peerv1.Update_LinkStatus{LinkStatus: &peerv1.LinkStatus{Link: id, Message: big}}
		}
		nonces = append(nonces, sendUpdate(t, stream, resource, payload))
		time.Sleep(100 * time.Millisecond)
	}
	reasons = countAnswers(ctx, t, stream, nonces)
	t.Logf("%d updates of 2 MiB in %s: %v", bigUpdates, time.Since(start).Round(time.Millisecond), reasons)
	if reasons["Ack"] > 0 || reasons["InvalidImport"]+reasons["InvalidLinkStatus"]+reasons["RateLimited"] != bigUpdates || reasons["InvalidImport"] == 0 {
		t.Errorf("2 MiB updates answered %v: want InvalidImport or InvalidLinkStatus (or RateLimited) for each", reasons)
	}

	// 3. An export that grants trudy: beyond the cap, refused naming it, nothing created.
	if _, err := west.Export(ctx, "flood", "open", "logs", l.remotePod.RemoteClusterAddress(), []string{"east", floodPeer}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 30*time.Second, "the granting export in west's cache", func() (bool, string) {
		exp, err := west.CRDs.ClusterExports().Get(ctx, "flood", "open")
		return err == nil && len(exp.Finalizers) > 0, "no finalizer yet"
	})
	id := &peerv1.Link{LocalNamespace: "flood", LocalElasticsearch: "ccs", Alias: "open-1"}
	a, err := stream.Update(ctx, &peerv1.Update{Resource: "import/flood/ccs/open-1", Sequence: 1, Payload: &peerv1.Update_ImportRequest{
		ImportRequest: &peerv1.ImportRequest{Link: id, ExportNamespace: "flood", ExportName: "open", ElasticsearchVersion: "9.3.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("granted request beyond the cap -> Nack %s: %s", a.Reason, a.Message)
	if a.Acked || a.Reason != "LinkLimitExceeded" || !strings.Contains(a.Message, "limits.linksPerPeer") {
		t.Errorf("granted request beyond the cap answered %+v, want a Nack LinkLimitExceeded naming limits.linksPerPeer", a)
	}

	// 4. East's links: the second came up during the flood, the first stayed connected, and
	// west's export status reports both.
	if err := <-secondUp; err != nil {
		t.Errorf("east's second link during the flood: %v", err)
	}
	waitFor(ctx, t, time.Minute, "west's export status lists both of east's links connected", func() (bool, string) {
		exp, err := west.CRDs.ClusterExports().Get(ctx, "flood", "logs")
		if err != nil {
			return false, err.Error()
		}
		connected := 0
		for _, el := range exp.Status.Links {
			if el.Peer == "east" && el.Connected {
				connected++
			}
		}
		return connected == 2 && exp.Status.LinkCount == 2, fmt.Sprintf("%d connected, linkCount %d", connected, exp.Status.LinkCount)
	})
	var keysOfFlood int
	for _, k := range l.remotePod.Node().APIKeys() {
		if meta, ok := k.Metadata["ecklink"].(map[string]any); ok && meta["peer"] == floodPeer {
			keysOfFlood++
		}
	}
	t.Logf("API keys in west's Elasticsearch: %d in all, %d for %s", len(l.remotePod.Node().APIKeys()), keysOfFlood, floodPeer)
	if keysOfFlood > 0 {
		t.Errorf("%d API keys created for %s's refused links", keysOfFlood, floodPeer)
	}

	// 5. Memory: the heap in use comes back within 16 MiB of before.
	var heap1 float64
	settled := waitFor(ctx, t, 3*time.Minute, "west's heap in use back within 16 MiB of before the flood", func() (bool, string) {
		if heap1, err = west.Metric(ctx, "go_memstats_heap_inuse_bytes"); err != nil {
			return false, err.Error()
		}
		return heap1-heap0 <= 16<<20, "heap in use " + mib(int64(heap1))
	})
	heapPeak := peak()
	rss1, rssPeak, err := west.Agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("west agent: heap in use %s before, peak %s, %s after (settled in %s); RSS %s before, %s after, peak %s",
		mib(int64(heap0)), mib(int64(heapPeak)), mib(int64(heap1)), settled.Round(time.Second), mib(rss0), mib(rss1), mib(rssPeak))
	if err := stream.Err(); err != nil {
		t.Errorf("trudy's stream ended: %v", err)
	}
	if !probe.Connected() {
		t.Error("east's first link is not connected after the flood")
	}
	r := probe.Stop()
	for _, s := range r.Disconnected {
		t.Errorf("east's first link: disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	t.Logf("probe of east's first link: %d samples, %d connected", r.Samples, r.Connected)
}

// sendUpdate sends one update of a fresh resource (sequence 1) without waiting for its answer.
func sendUpdate(t *testing.T, s *harness.FakeStream, resource string, payload any) string {
	t.Helper()
	u := &peerv1.Update{Resource: resource, Sequence: 1, Nonce: s.Nonce()}
	switch p := payload.(type) {
	case *peerv1.Update_ImportRequest:
		u.Payload = p
	case *peerv1.Update_LinkStatus:
		u.Payload = p
	}
	if err := s.Send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}); err != nil {
		t.Fatalf("flood: %v (stream: %v)", err, s.Err())
	}
	return u.Nonce
}

// countAnswers waits for the answers to nonces and counts them by reason ("Ack" for Acks).
func countAnswers(ctx context.Context, t *testing.T, s *harness.FakeStream, nonces []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range nonces {
		a, err := s.Answer(ctx, n, time.Minute)
		if err != nil {
			t.Fatalf("flood: no answer to %s: %v", n, err)
		}
		if a.Acked {
			out["Ack"]++
		} else {
			out[a.Reason]++
		}
	}
	return out
}

// sampleHeap reads c's heap in use every 500ms until ctx ends; the returned func gives the
// highest value seen so far.
func sampleHeap(ctx context.Context, c *harness.Cluster) func() float64 {
	var mu sync.Mutex
	var highest float64
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if v, err := c.Metric(ctx, "go_memstats_heap_inuse_bytes"); err == nil {
				mu.Lock()
				highest = max(highest, v)
				mu.Unlock()
			}
		}
	}()
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return highest
	}
}

// deleteFloodPeer unpairs trudy from west; west drops what it held for it.
func deleteFloodPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds := world.Clusters["west"].CRDs
	if err := crds.Peers().Delete(ctx, harness.AgentNamespace, floodPeer); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("failed to delete Peer %s: %v", floodPeer, err)
	}
}
