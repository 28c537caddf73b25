package strongidentity

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/test/esim"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// link is west's "logs" exported to east and imported by east's "ccs" under alias, in ns.
type link struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
}

func setup(ctx context.Context, t *testing.T, ns, remoteVersion, localVersion string, mode v1alpha1.StrongIdentityMode) *link {
	t.Helper()
	l := &link{remote: world.Clusters["west"], local: world.Clusters["east"], ns: ns, alias: "logs"}
	var err error
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: remoteVersion, RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: localVersion}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.remote.Export(ctx, ns, "logs", "logs", l.remotePod.RemoteClusterAddress(), []string{"east"}, func(e *v1alpha1.ClusterExport) {
		e.Spec.StrongIdentity = mode
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.local.Import(ctx, ns, l.alias, "ccs", l.alias, "west", ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	return l
}

// activeKeys are the link's keys in west's Elasticsearch that are neither invalidated nor expired.
func (l *link) activeKeys() []esim.APIKeyInfo {
	var out []esim.APIKeyInfo
	for _, k := range l.remotePod.Node().APIKeys() {
		if meta, ok := k.Metadata["ecklink"].(map[string]any); ok && meta["link"] == l.ns+"/ccs/"+l.alias && !k.Invalidated && !k.Expired(time.Now()) {
			out = append(out, k)
		}
	}
	return out
}

// waitRefused waits until the RemoteCluster is not Ready because west refused the link for
// strong identity, with msg in the condition's message, and returns how long that took.
func (l *link) waitRefused(ctx context.Context, t *testing.T, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 90*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonStrongIdentityUnavailable && strings.Contains(c.Message, msg)
	})
	if err != nil {
		t.Fatalf("RemoteCluster not refused with %q: %v; status:%s", msg, err, harness.DescribeConditions(rc))
	}
	t.Logf("refused after %s: %s", time.Since(start).Round(time.Millisecond), harness.Condition(rc, v1alpha1.ConditionReady).Message)
	return time.Since(start)
}

// setMode changes the export's spec.strongIdentity.
func (l *link) setMode(ctx context.Context, t *testing.T, mode v1alpha1.StrongIdentityMode) {
	t.Helper()
	if err := l.remote.UpdateClusterExport(ctx, l.ns, "logs", func(e *v1alpha1.ClusterExport) { e.Spec.StrongIdentity = mode }); err != nil {
		t.Fatal(err)
	}
}

// connect waits until a probe sees the link connected and the RemoteCluster is Ready.
func (l *link) connect(ctx context.Context, t *testing.T, probe *harness.Probe) time.Duration {
	t.Helper()
	d, err := probe.WaitConnected(ctx, 120*time.Second)
	if err != nil {
		rc, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		t.Fatalf("%v (%s); RemoteCluster status:%s", err, l.localPod.RemoteError(l.alias), harness.DescribeConditions(rc))
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRequiredBelow93IsRefused: an export that requires strong identity is refused, with the
// side below 9.3 named on the RemoteCluster and no key issued, for as long as it requires it;
// set to Disabled, the same link connects.
func TestRequiredBelow93IsRefused(t *testing.T) {
	requireWorld(t)
	for _, tc := range []struct {
		name, ns, remote, local, msg string
	}{
		{"exported 8.x", "si-remote8", "8.19.2", "9.3.2", "the exported Elasticsearch runs 8.19.2, it needs 9.3 or later on both sides"},
		{"consumer 9.2", "si-local92", "9.3.2", "9.2.4", "the consuming Elasticsearch runs 9.2.4, it needs 9.3 or later on both sides"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
			defer cancel()
			l := setup(ctx, t, tc.ns, tc.remote, tc.local, v1alpha1.StrongIdentityRequired)
			probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
			defer probe.Stop()
			l.waitRefused(ctx, t, tc.msg)
			// Refused for a while: no key, never connected.
			time.Sleep(5 * time.Second)
			if keys := l.activeKeys(); len(keys) != 0 {
				t.Fatalf("refused link has %d active keys", len(keys))
			}
			if r := probe.Result(); r.Connected != 0 || r.Samples == 0 {
				t.Fatalf("refused link: %d of %d samples connected", r.Connected, r.Samples)
			}
			exp, err := l.remote.WaitClusterExport(ctx, l.ns, "logs", 30*time.Second, func(e *v1alpha1.ClusterExport) bool {
				return slices.ContainsFunc(e.Status.Links, func(x v1alpha1.ExportLink) bool { return strings.Contains(x.Message, tc.msg) })
			})
			if err != nil {
				t.Fatalf("export status does not say why: %v (%+v)", err, exp)
			}
			l.setMode(ctx, t, v1alpha1.StrongIdentityDisabled)
			t.Logf("connected %s after strongIdentity Disabled", l.connect(ctx, t, probe).Round(time.Millisecond))
		})
	}
}

// TestPreferred: an export that prefers strong identity uses it where both sides run 9.3 or
// later, and elsewhere links without it, with the RemoteCluster's StrongIdentity condition and
// the export's link step saying why.
func TestPreferred(t *testing.T) {
	requireWorld(t)
	for _, tc := range []struct {
		name, ns, local, step, why string
	}{
		{"consumer 8.x falls back", "si-pref8", "8.19.2", "Unavailable", "the consuming Elasticsearch runs 8.19.2, it needs 9.3 or later on both sides"},
		{"both 9.3 enforce", "si-pref93", "9.3.2", "Enforced", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
			defer cancel()
			l := setup(ctx, t, tc.ns, "9.3.2", tc.local, v1alpha1.StrongIdentityPreferred)
			probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
			defer probe.Stop()
			t.Logf("connected %s after the RemoteCluster was created", l.connect(ctx, t, probe).Round(time.Millisecond))
			d, seen := l.waitStep(ctx, t, tc.step, 90*time.Second)
			t.Logf("export link step %s after %s more (seen %q)", tc.step, d.Round(time.Millisecond), seen)
			rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
				c := harness.Condition(rc, v1alpha1.ConditionStrongIdentity)
				if tc.why == "" {
					return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonStrongIdentityEnforced
				}
				return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonStrongIdentityUnavailable && strings.Contains(c.Message, tc.why)
			})
			if err != nil {
				t.Fatalf("StrongIdentity condition: %v; status:%s", err, harness.DescribeConditions(rc))
			}
			t.Logf("StrongIdentity condition: %s", harness.Condition(rc, v1alpha1.ConditionStrongIdentity).Message)
			want := "" // the key's certificate_identity
			if tc.why == "" {
				want = signing.IdentityPattern(subject(tc.ns))
			}
			if ids := l.keyIdentities(); len(ids) != 1 || ids[0] != want {
				t.Fatalf("key identities %q, want one key with %q", ids, want)
			}
			if !probe.Connected() {
				t.Fatalf("not connected at the end: %s", l.localPod.RemoteError(l.alias))
			}
		})
	}
}
