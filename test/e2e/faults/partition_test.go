package faults

import (
	"context"
	"crypto"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
)

// TestPartitionDuringCARotation cuts the agent-to-agent connection (the proxy drops all traffic,
// no reset), then ECK issues west a transport CA with a new key, which east's copy cannot verify:
// the link is down until east holds the new CA. After the partition heals, east holds it within
// the heartbeat timeout plus the dialer's backoff delay at that moment, and the link connects.
func TestPartitionDuringCARotation(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	east, west := world.Clusters["east"], world.Clusters["west"]
	l := newLink(ctx, t, "partition", "west-partition", nil)
	probe := l.connect(ctx, t, 2*time.Minute)
	before, err := l.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}

	proxy.Partition()
	partitioned := time.Now()
	defer proxy.Heal()
	waitFor(ctx, t, 30*time.Second, "east sees the stream to west down", func() (bool, string) {
		p, err := east.CRDs.Peers().Get(ctx, harness.AgentNamespace, "west")
		if err != nil {
			return false, err.Error()
		}
		return harness.HasCondition(p, v1alpha1.ConditionConnected, metav1.ConditionFalse), harness.DescribeConditions(p)
	})
	t.Logf("east noticed the partition after %s", time.Since(partitioned).Round(100*time.Millisecond))

	if err := west.Env.Kube.CoreV1().Secrets(l.ns).Delete(ctx, "logs-es-transport-ca-internal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "ECK issued a CA with a new key", func() (bool, string) {
		ca, err := l.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.Cert.PublicKey), "same key"
	})
	fresh, _ := l.transportCA(ctx)
	// Hold the partition long enough for the dialer to back off a few times.
	select {
	case <-time.After(time.Until(partitioned.Add(40 * time.Second))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if l.localTrusts(ctx, fresh.Fingerprint) {
		t.Fatal("east holds the new CA although the partition is not healed: the proxy let traffic through")
	}
	backoff := lastRetryDelay(east.Agent.Log(), "stream to peer ended")
	proxy.Heal()
	healed := time.Now()
	got := waitFor(ctx, t, 2*time.Minute, "east holds west's new CA", func() (bool, string) {
		return l.localTrusts(ctx, fresh.Fingerprint), "not yet"
	})
	bound := 3*heartbeat + backoff + 5*time.Second // heartbeat timeout + backoff + applying it
	t.Logf("partition %s; east held the new CA %s after healing (dialer backoff at healing %s, bound %s)",
		healed.Sub(partitioned).Round(100*time.Millisecond), got.Round(100*time.Millisecond), backoff, bound)
	if got > bound {
		t.Errorf("east held the new CA %s after healing, more than the heartbeat timeout + backoff + 5s (%s)", got, bound)
	}
	reconnected := waitFor(ctx, t, time.Minute, "link connected again", func() (bool, string) {
		return probe.Connected(), "not connected"
	})
	t.Logf("link connected again %s after east held the new CA", reconnected.Round(100*time.Millisecond))
	probe.Stop()
	l.deleteLink(ctx, t)
}
