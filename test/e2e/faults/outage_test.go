package faults

import (
	"context"
	"crypto"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/test/harness"
)

// TestKubernetesAPIOutage stops each environment's kube-apiserver for 40s in turn, while the
// other side changes something the stopped side must act on: during west's outage east imports a
// second alias (west must make and send its key, reading only its informer cache); during east's
// outage west gets a transport CA with a new key (east can only apply it once its API is back).
// The agents recover by themselves, without a restart (same processes), and each link ends with
// exactly one live key, the one in effect.
func TestKubernetesAPIOutage(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	first := newLink(ctx, t, "outage", "west-outage", nil)
	first.connect(ctx, t, 2*time.Minute).Stop()
	first.requireNoLeakedKey(ctx, t, time.Minute)
	pids := map[*harness.Cluster]int{west: west.Agent.Pid(), east: east.Agent.Pid()}
	const outage = 40 * time.Second

	// 1. West's API is down; east imports a second alias of the same export.
	second := &link{remote: west, local: east, remotePod: first.remotePod, localPod: first.localPod, ns: first.ns, alias: "west-outage-2"}
	west.Env.StopAPIServer()
	stopped := time.Now()
	second.importIt(ctx, t)
	time.Sleep(time.Until(stopped.Add(outage)))
	if err := west.Env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	second.connect(ctx, t, 2*time.Minute).Stop()
	t.Logf("west's API down %s: the alias imported meanwhile connected %s after it came back (%s after it was created)",
		restored.Sub(stopped).Round(time.Second), time.Since(restored).Round(100*time.Millisecond), time.Since(stopped).Round(100*time.Millisecond))

	// 2. East's API is down; west's transport CA gets a new key.
	before, err := first.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	east.Env.StopAPIServer()
	stopped = time.Now()
	eastDown := true
	t.Cleanup(func() { // a failure below must not leave east's API down for the next scenarios
		if eastDown {
			if err := east.Env.StartAPIServer(context.Background()); err != nil {
				t.Errorf("failed to restart east's API server: %v", err)
			}
		}
	})
	if err := west.Env.Kube.CoreV1().Secrets(first.ns).Delete(ctx, "logs-es-transport-ca-internal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// ECK's own watches came back from west's outage above on client-go's relist backoff (up to
	// ~90s): the CA it reissues may take that long.
	waitFor(ctx, t, 3*time.Minute, "ECK issued a CA with a new key", func() (bool, string) {
		ca, err := first.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.Cert.PublicKey), "same key"
	})
	fresh, _ := first.transportCA(ctx)
	time.Sleep(time.Until(stopped.Add(outage)))
	if err := east.Env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	eastDown = false
	restored = time.Now()
	applied := waitFor(ctx, t, 2*time.Minute, "east holds west's new CA", func() (bool, string) {
		return first.localTrusts(ctx, fresh.Fingerprint), "not yet"
	})
	for _, l := range []*link{first, second} {
		l.connect(ctx, t, 2*time.Minute).Stop()
	}
	t.Logf("east's API down %s: the new CA applied %s and both links connected %s after it came back",
		restored.Sub(stopped).Round(time.Second), applied.Round(100*time.Millisecond), time.Since(restored).Round(100*time.Millisecond))

	for c, pid := range pids {
		if got := c.Agent.Pid(); got != pid || !c.Agent.Running() {
			t.Errorf("agent %s restarted during the outages (pid %d, was %d)", c.Name, got, pid)
		}
	}
	for _, l := range []*link{first, second} {
		live := l.requireNoLeakedKey(ctx, t, time.Minute)
		t.Logf("%s: %d key(s) ever made, live %s", l.alias, len(l.keys()), live.ID)
		if n := len(l.keys()); n != 1 {
			t.Errorf("%s: %d keys made, want 1 (no duplicates):%s", l.alias, n, describeKeys(l.keys()))
		}
	}
	second.deleteLink(ctx, t)
	first.deleteLink(ctx, t)
}
