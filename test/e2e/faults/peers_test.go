package faults

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// probeTook reads the handshake duration from a ProbeSucceeded message ("... (3ms)").
var probeTook = regexp.MustCompile(`\(([0-9.]+[µm]?s)\)$`)

// TestPeerStateAndProbe: with a link connected, the agent's own probe reports the handshake
// verified and the link's PeerConnected is True; when west's agent is killed, east's Peer goes
// from Active to Failing (with the error and the time) and the RemoteCluster says the stream is
// down, while Elasticsearch's link stays connected; when west is back, both are Active again.
func TestPeerStateAndProbe(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	west := world.Clusters["west"]
	l := newLink(ctx, t, "peerstate", "west-peerstate", nil)
	probe := l.connect(ctx, t, 2*time.Minute)

	var took string
	waitFor(ctx, t, 30*time.Second, "the agent's probe verified and the peer connected", func() (bool, string) {
		rc, err := l.rc(ctx)
		if err != nil {
			return false, err.Error()
		}
		pr, pc := harness.Condition(rc, v1alpha1.ConditionProbeSucceeded), harness.Condition(rc, v1alpha1.ConditionPeerConnected)
		if pr == nil || pr.Reason != v1alpha1.ReasonHandshakeVerified || pc == nil || pc.Status != metav1.ConditionTrue {
			return false, harness.DescribeConditions(rc)
		}
		if m := probeTook.FindStringSubmatch(pr.Message); m != nil {
			took = m[1]
		}
		return true, ""
	})
	text, err := l.local.Agent.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`{alias=%q,elasticsearch="ccs",es_namespace=%q}`, l.alias, l.ns)
	if got := harness.MetricSum(text, "ecklink_link_probe_success"+series); got != 1 {
		t.Errorf("ecklink_link_probe_success%s = %v, want 1", series, got)
	}
	t.Logf("the agent's probe: handshake verified in %s (ecklink_link_probe_duration_seconds %.4fs)", took,
		harness.MetricSum(text, "ecklink_link_probe_duration_seconds"+series))
	if p := eastsPeer(ctx, t); p.Status.State != v1alpha1.PeerStateActive || p.Status.Stream == nil || p.Status.Stream.Endpoint != proxyAddr {
		t.Fatalf("east's Peer west: %s", describePeer(p))
	}

	west.Agent.Kill()
	killed := time.Now()
	failing := waitFor(ctx, t, 30*time.Second, "east's Peer west Failing", func() (bool, string) {
		p := eastsPeer(ctx, t)
		st := p.Status.Stream
		return p.Status.State == v1alpha1.PeerStateFailing && st != nil && st.LastError != "" && st.LastDisconnectTime != nil &&
			!st.LastDisconnectTime.Time.Before(killed.Add(-time.Second).Truncate(time.Second)), describePeer(p)
	})
	p := eastsPeer(ctx, t)
	t.Logf("east's Peer west Failing %s after the kill: %s", failing.Round(100*time.Millisecond), describePeer(p))
	waitFor(ctx, t, 30*time.Second, "the RemoteCluster says the stream is down", func() (bool, string) {
		rc, err := l.rc(ctx)
		if err != nil {
			return false, err.Error()
		}
		pc := harness.Condition(rc, v1alpha1.ConditionPeerConnected)
		return pc != nil && pc.Status == metav1.ConditionFalse && pc.Reason == v1alpha1.ReasonPeerDisconnected, harness.DescribeConditions(rc)
	})

	if err := west.Agent.Start(); err != nil {
		t.Fatal(err)
	}
	back := waitFor(ctx, t, time.Minute, "east's Peer west Active again", func() (bool, string) {
		p := eastsPeer(ctx, t)
		return p.Status.State == v1alpha1.PeerStateActive, describePeer(p)
	})
	waitFor(ctx, t, 30*time.Second, "the RemoteCluster's peer connected again", func() (bool, string) {
		rc, err := l.rc(ctx)
		if err != nil {
			return false, err.Error()
		}
		return harness.HasCondition(rc, v1alpha1.ConditionPeerConnected, metav1.ConditionTrue), harness.DescribeConditions(rc)
	})
	t.Logf("Active again %s after west restarted", back.Round(100*time.Millisecond))
	requireNoDisconnects(t, probe.Stop())
	// Deleted within seconds of west's restart: west never held this link in its new process
	// (east resends only the latest state of each resource), and its key still goes.
	l.deleteLink(ctx, t)
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
