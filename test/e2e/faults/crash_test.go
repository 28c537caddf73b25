package faults

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/failpoint"
	"github.com/ecklink/ecklink/test/harness"
)

// crashAt restarts c's agent with failpoint fp armed, runs trigger, and waits until the agent
// killed itself there (SIGKILL, as kill -9). It then starts the agent again, unarmed, and returns
// when the crash happened.
func crashAt(ctx context.Context, t *testing.T, c *harness.Cluster, fp string, trigger func()) time.Time {
	t.Helper()
	a := c.Agent
	base := slices.Clone(a.Env)
	a.Stop()
	a.Env = append(slices.Clone(base), failpoint.EnvVar+"="+fp)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	a.Env = base
	trigger()
	if !a.Wait(2 * time.Minute) {
		t.Fatalf("agent %s did not reach failpoint %s within 2m; log:\n%s", c.Name, fp, a.LogTail(40))
	}
	crashed := time.Now()
	if !strings.Contains(a.LogTail(20), "failpoint "+fp+": hit") {
		t.Fatalf("agent %s ended without naming failpoint %s; log:\n%s", c.Name, fp, a.LogTail(40))
	}
	a.Stop() // collects the dead process
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	return crashed
}

// TestCrashWhileApplying kills east's agent (kill -9, at a failpoint) at each step of applying a
// new link: after the CA ConfigMap write, after the credentials Secret write, after the
// Elasticsearch resource was wired, and after the alias was recorded as managed but before its
// settings PUT. On restart, the link converges to connected and exactly one API key is live on
// the remote: the one in effect; every other key is invalidated.
func TestCrashWhileApplying(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	east := world.Clusters["east"]
	for _, step := range []struct{ fp, ns string }{
		{failpoint.ImporterAfterConfigMapWrite, "crash-configmap"},
		{failpoint.ImporterAfterSecretWrite, "crash-secret"},
		{failpoint.ImporterAfterWiring, "crash-wiring"},
		{failpoint.ImporterBeforeSettingsPut, "crash-settings"},
	} {
		t.Run(step.fp, func(t *testing.T) {
			l := prepareLink(ctx, t, step.ns, "west-"+step.ns, nil)
			crashed := crashAt(ctx, t, east, step.fp, func() { l.importIt(ctx, t) })
			probe := l.connect(ctx, t, 2*time.Minute)
			connected := time.Since(crashed)
			live := l.requireNoLeakedKey(ctx, t, time.Minute)
			t.Logf("%s: connected %s after the crash; keys created %d, live %s (in effect)", step.fp,
				connected.Round(100*time.Millisecond), len(l.keys()), live.ID)
			checkApplied(ctx, t, l)
			probe.Stop()
			l.deleteLink(ctx, t)
		})
	}
}

// checkApplied checks the local objects of a connected link: the Secret holds the live key, the
// ConfigMap the remote's CA, and the Elasticsearch resource lists the Secret once.
func checkApplied(ctx context.Context, t *testing.T, l *link) {
	t.Helper()
	ca, err := l.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !l.localTrusts(ctx, ca.Fingerprint) {
		t.Errorf("the CA ConfigMap does not hold west's transport CA")
	}
	s, err := l.localSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Data["cluster.remote."+l.alias+".credentials"]) == 0 {
		t.Errorf("the credentials Secret has no entry for %s", l.alias)
	}
	es, err := l.local.Env.Dynamic.Resource(esGVR).Namespace(l.ns).Get(ctx, "ccs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secure, _, _ := unstructuredSlice(es.Object, "spec", "secureSettings")
	n := 0
	for _, s := range secure {
		if m, ok := s.(map[string]any); ok && m["secretName"] == "ccs-ecklink-remote-credentials" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("spec.secureSettings lists the credentials Secret %d times, want once", n)
	}
}

// TestCrashDuringKeyRotation kills west's agent after it created the rotated API key in
// Elasticsearch and before it sent the key to east. On restart the undelivered key is
// invalidated, a new one is made and delivered, the old one goes after east connected with the
// new one, and the link never disconnects.
func TestCrashDuringKeyRotation(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	west := world.Clusters["west"]
	// Keys live 3 minutes and rotate 2m30s before they expire: the first rotation is due 30s
	// after the first key was made.
	l := newLink(ctx, t, "crash-rotate", "west-rotate", func(e *v1alpha1.ClusterExport) {
		e.Spec.APIKey = &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 3 * time.Minute},
			RotateBefore: &metav1.Duration{Duration: 150 * time.Second}}
	})
	probe := l.connect(ctx, t, 2*time.Minute)
	first := l.requireNoLeakedKey(ctx, t, time.Minute)
	t.Logf("first key %s, rotation due at %s", first.ID, first.Creation.Add(30*time.Second).Format(time.TimeOnly))

	// West restarts with the failpoint armed: its next key creation is the rotation.
	crashAt(ctx, t, west, failpoint.ExporterAfterKeyCreate, func() {})
	keys := l.keys()
	if len(keys) < 2 {
		t.Fatalf("the rotation did not create a key before the crash:%s", describeKeys(keys))
	}
	undelivered := keys[len(keys)-1]
	t.Logf("crashed after creating %s; keys now:%s", undelivered.ID, describeKeys(keys))

	live := l.requireNoLeakedKey(ctx, t, 90*time.Second)
	if live.ID == first.ID || live.ID == undelivered.ID {
		t.Fatalf("live key %s: want a key made after the restart", live.ID)
	}
	if k, _ := l.remotePod.Node().APIKey(undelivered.ID); !k.Invalidated {
		t.Errorf("the undelivered key %s is still live", undelivered.ID)
	}
	if k, _ := l.remotePod.Node().APIKey(first.ID); !k.Invalidated || !k.Invalidation.After(live.Creation) {
		t.Errorf("first key %s: invalidated=%v at %v, want invalidated after the new key %s was made", first.ID, k.Invalidated, k.Invalidation, live.ID)
	}
	t.Logf("rotation recovered: live %s, invalidated %s (undelivered) and %s (previous)", live.ID, undelivered.ID, first.ID)
	r := probe.Stop()
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	t.Logf("probe: %d samples, %d connected", r.Samples, r.Connected)
	l.deleteLink(ctx, t)
}

// TestAgentRestartsKeepLinks kills each agent (kill -9) in turn and starts it again, with two
// links: the links keep their keys (nothing new made, nothing invalidated), east never removes
// their settings, and no sample of _remote/info is disconnected. While an agent restarts, the
// Elasticsearch clusters it calls answer slowly (2s), so that its first Inventory goes out
// before it could re-send everything from Elasticsearch: the peer must not read that as a
// withdrawal.
func TestAgentRestartsKeepLinks(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	links := []*link{newLink(ctx, t, "restarts-a", "west-a", nil), newLink(ctx, t, "restarts-b", "west-b", nil)}
	var probes []*harness.Probe
	keys := map[*link]string{}
	for _, l := range links {
		probes = append(probes, l.connect(ctx, t, 2*time.Minute))
		keys[l] = l.requireNoLeakedKey(ctx, t, time.Minute).ID
	}
	slow := func(*http.Request) (int, time.Duration) { return 0, 2 * time.Second }
	for _, name := range []string{"west", "east", "west", "east"} {
		c := world.Clusters[name]
		for _, l := range links {
			if name == "east" {
				l.localPod.SetHTTPFault(slow)
			} else {
				l.remotePod.SetHTTPFault(slow)
			}
		}
		c.Agent.Kill()
		if err := c.Agent.Start(); err != nil {
			t.Fatal(err)
		}
		// Let the streams open again and a few resyncs pass.
		time.Sleep(3 * resync)
		for _, l := range links {
			l.localPod.SetHTTPFault(nil)
			l.remotePod.SetHTTPFault(nil)
		}
		time.Sleep(resync)
	}
	for _, l := range links {
		// The statuses too: after east's restart the RemoteClusters are Ready again, although
		// nothing changed that would make west send new credentials.
		if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
			return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
		}); err != nil {
			t.Error(err)
		}
	}
	for i, l := range links {
		if got := l.keys(); len(got) != 1 || got[0].ID != keys[l] || got[0].Invalidated {
			t.Errorf("%s: keys after the restarts:%s, want only %s, live", l.alias, describeKeys(got), keys[l])
		}
		if n := l.local.Agent.LogCount("remote cluster settings removed: elasticsearch=" + l.ns + "/ccs alias=" + l.alias); n > 0 {
			t.Errorf("east removed the settings of %s %d times", l.alias, n)
		}
		r := probes[i].Stop()
		for _, s := range r.Disconnected {
			t.Errorf("%s: disconnected sample at %s: %s", l.alias, s.At.Format(time.RFC3339Nano), s.Reason)
		}
		t.Logf("%s: 4 restarts, key %s kept, %d samples, %d connected", l.alias, keys[l], r.Samples, r.Connected)
	}
	for _, l := range links {
		l.deleteLink(ctx, t)
	}
}
