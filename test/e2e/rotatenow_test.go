package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/ctl"
	"github.com/ecklink/ecklink/test/harness"
)

// TestRotateKeyNow: `agentctl rotate key` on two links of one local Elasticsearch (issue 15 §6).
//   - make-before-break: the command returns once a new key is in effect; the old key is
//     invalidated only after that, and the link, sampled every second, never disconnects;
//   - --invalidate-old-now: the old key is invalidated as soon as the new one exists, before the
//     local Elasticsearch restarts with the new key; the link connects again with the new key.
func TestRotateKeyNow(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := setupLink(ctx, t, "west", "east", "rotnow", "west-rotnow", nil, nil)
	b := *a
	b.alias = "west-rotnow-urgent"
	if _, err := b.local.Import(ctx, b.ns, b.alias, "ccs", b.alias, "west", b.ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	probeA := a.connect(ctx, t)
	probeB := b.connect(ctx, t)

	t.Run("make-before-break", func(t *testing.T) {
		old := a.keyInEffect(ctx, t)
		start := time.Now()
		code, out, errOut := agentctlIn(ctx, t, a.local, "rotate", "key", a.ns+"/"+a.alias, "--timeout", "2m")
		took := time.Since(start)
		if code != 0 || !strings.Contains(out, "rotated the API key of "+a.ns+"/"+a.alias+": "+old+" -> ") {
			t.Fatalf("rotate key: exit %d: %s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "waiting for the new API key") {
			t.Errorf("no progress on stderr: %q", errOut)
		}
		newKey := a.keyInEffect(ctx, t)
		if newKey == old {
			t.Fatalf("key in effect is still %s", old)
		}
		t.Logf("new key %s in effect %s after the command started", newKey, took.Round(100*time.Millisecond))
		waitFor(ctx, t, 60*time.Second, "old key invalidated after the peer used the new one", func() (bool, string) {
			k, _ := a.remotePod.Node().APIKey(old)
			return k.Invalidated, "old key still valid:" + describeKeys(a.keys())
		})
		oldKey, _ := a.remotePod.Node().APIKey(old)
		if restarted := a.localPod.StartTime(); !oldKey.Invalidation.After(restarted) {
			t.Errorf("old key invalidated at %s, before the local Elasticsearch restarted with the new key at %s",
				oldKey.Invalidation.Format(time.TimeOnly), restarted.Format(time.TimeOnly))
		}
		t.Logf("old key invalidated %s after the command started", oldKey.Invalidation.Sub(start).Round(100*time.Millisecond))
		if live := a.activeKeys(); len(live) != 1 || live[0].ID != newKey {
			t.Errorf("live keys%s, want only %s", describeKeys(live), newKey)
		}
		time.Sleep(3 * time.Second) // samples past the invalidation
		requireNoDisconnects(t, probeA.Stop())
	})

	t.Run("invalidate-old-now", func(t *testing.T) {
		probeB.Stop() // this rotation disconnects the link by design
		old := b.keyInEffect(ctx, t)
		restartedBefore := b.localPod.StartTime()
		probe := harness.StartProbe(ctx, b.localPod, b.alias, time.Second)
		defer probe.Stop()
		start := time.Now()
		code, out, errOut := agentctlIn(ctx, t, b.local, "rotate", "key", b.ns+"/"+b.alias, "--invalidate-old-now", "--timeout", "2m")
		took := time.Since(start)
		if code != 0 || !strings.Contains(out, "rotated the API key of "+b.ns+"/"+b.alias+": "+old+" -> ") {
			t.Fatalf("rotate key --invalidate-old-now: exit %d: %s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "is DISCONNECTED until the new key is in effect") {
			t.Errorf("the command does not say it disconnects: %q", errOut)
		}
		newKey := b.keyInEffect(ctx, t)
		oldKey, _ := b.remotePod.Node().APIKey(old)
		created, _ := b.remotePod.Node().APIKey(newKey)
		if !oldKey.Invalidated {
			t.Fatalf("old key %s still valid once the new key %s is in effect", old, newKey)
		}
		restarted := b.localPod.StartTime()
		if !restarted.After(restartedBefore) || !oldKey.Invalidation.Before(restarted) {
			t.Errorf("old key invalidated at %s, want before the local Elasticsearch restarted with the new key (%s)",
				oldKey.Invalidation.Format(time.TimeOnly), restarted.Format(time.TimeOnly))
		}
		if gap := oldKey.Invalidation.Sub(created.Creation); gap > 5*time.Second {
			t.Errorf("old key invalidated %s after the new key was made, want at once", gap)
		}
		t.Logf("new key %s in effect %s after the command started; old key invalidated %s after the new key was made",
			newKey, took.Round(100*time.Millisecond), oldKey.Invalidation.Sub(created.Creation).Round(time.Millisecond))
		waitFor(ctx, t, 60*time.Second, "connected again with the new key", func() (bool, string) {
			return probe.Connected(), "last sample not connected"
		})
		r := probe.Stop()
		t.Logf("probe: %d samples, %d connected, %d disconnected (by design)", r.Samples, r.Connected, len(r.Disconnected))
	})
}

// keyInEffect is the key id the RemoteCluster reports in effect.
func (l *link) keyInEffect(ctx context.Context, t *testing.T) string {
	t.Helper()
	rc, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status.APIKey == nil {
		t.Fatalf("RemoteCluster %s/%s has no key in effect:%s", l.ns, l.alias, harness.DescribeConditions(rc))
	}
	return rc.Status.APIKey.ID
}

// agentctlIn runs agentctl in process against environment c (its admin kubeconfig) and returns
// the exit code, stdout and stderr.
func agentctlIn(ctx context.Context, t *testing.T, c *harness.Cluster, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := ctl.NewCommand(ctl.Options{Out: &out, Err: &errb})
	cmd.SetArgs(append(args, "--kubeconfig", c.Env.AdminKubeconfig, "-n", harness.AgentNamespace))
	start := time.Now()
	code := ctl.Execute(ctx, cmd)
	t.Logf("agentctl %s: exit %d in %s\n%s%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), out.String(), errb.String())
	return code, out.String(), errb.String()
}
