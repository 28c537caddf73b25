package faults

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// eastsPeer reads east's Peer west.
func eastsPeer(ctx context.Context, t *testing.T) *v1alpha1.Peer {
	t.Helper()
	p, err := world.Clusters["east"].CRDs.Peers().Get(ctx, harness.AgentNamespace, "west")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func describePeer(p *v1alpha1.Peer) string {
	s := fmt.Sprintf("state %s, endpoints %v (spec %v)", p.Status.State, p.Status.Endpoints, p.Spec.Endpoints)
	if st := p.Status.Stream; st != nil {
		s += fmt.Sprintf(", stream to %q, last error %q", st.Endpoint, st.LastError)
	}
	return s + harness.DescribeConditions(p)
}

// TestEndpointMove: west gets a new load balancer address (a second proxy), advertises it and
// restarts; east learns it over the stream, moves its stream there with no manual step, and
// stays connected when the old address goes away. Elasticsearch's link, sampled every second,
// never disconnects; east's Peer spec stays as written. Afterwards west moves back.
func TestEndpointMove(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	west := world.Clusters["west"]
	l := newLink(ctx, t, "endpoint-move", "west-move", nil)
	probe := l.connect(ctx, t, 2*time.Minute)
	before := eastsPeer(ctx, t)

	moved, err := harness.StartProxy(testbed.LoopbackIP()+":9400", west.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	west.Agent.SetFlag("advertise-endpoint", moved.Addr())
	restarted := time.Now()
	if err := west.Agent.Restart(); err != nil {
		t.Fatal(err)
	}
	followed := waitFor(ctx, t, time.Minute, "east follows west to its new address", func() (bool, string) {
		p := eastsPeer(ctx, t)
		st := p.Status.Stream
		return p.Status.State == v1alpha1.PeerStateActive && slices.Equal(p.Status.Endpoints, []string{moved.Addr()}) &&
			st != nil && st.Endpoint == moved.Addr(), describePeer(p)
	})
	t.Logf("east streams to west's new address %s after west restarted on it (%s after the restart began)",
		followed.Round(100*time.Millisecond), time.Since(restarted).Round(100*time.Millisecond))

	// The old address goes away: east's stream is already on the new one.
	connectedAt := eastsPeer(ctx, t).Status.Stream.LastConnectTime
	proxy.Close()
	time.Sleep(5 * heartbeat)
	p := eastsPeer(ctx, t)
	if p.Status.State != v1alpha1.PeerStateActive || !p.Status.Stream.LastConnectTime.Equal(connectedAt) {
		t.Errorf("east's stream moved or dropped when the old address went away: %s", describePeer(p))
	}
	if p.Spec.CABundle != before.Spec.CABundle || !slices.Equal(p.Spec.Endpoints, before.Spec.Endpoints) {
		t.Errorf("east's Peer spec changed: endpoints %v, was %v", p.Spec.Endpoints, before.Spec.Endpoints)
	}
	// A restart of west now: east reaches it only at the address it learnt.
	if err := west.Agent.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "east reconnects to the new address", func() (bool, string) {
		p := eastsPeer(ctx, t)
		return p.Status.State == v1alpha1.PeerStateActive && p.Status.Stream.LastConnectTime.After(connectedAt.Time), describePeer(p)
	})
	r := probe.Stop()
	requireNoDisconnects(t, r)
	t.Logf("endpoint move: east followed in %s; %d samples, %d disconnected", followed.Round(100*time.Millisecond), r.Samples, len(r.Disconnected))

	// Back to the old address, for the scenarios after this one.
	if proxy, err = harness.StartProxy(proxyAddr, west.Endpoint); err != nil {
		t.Fatal(err)
	}
	west.Agent.SetFlag("advertise-endpoint", proxyAddr)
	if err := west.Agent.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "east back on the first address", func() (bool, string) {
		p := eastsPeer(ctx, t)
		return p.Status.State == v1alpha1.PeerStateActive && p.Status.Stream.Endpoint == proxyAddr, describePeer(p)
	})
	l.deleteLink(ctx, t)
}

// requireNoDisconnects fails on any disconnected sample after the first connection.
func requireNoDisconnects(t *testing.T, r harness.Result) {
	t.Helper()
	t.Logf("probe: %d samples, %d connected", r.Samples, r.Connected)
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
}
