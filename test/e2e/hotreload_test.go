package e2e

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestHotReloadKeyRotation: the consuming Elasticsearch is 9.5 with ECK 3.5's file-based secure
// settings, and its kubelet syncs volumes at the default minute. The real ECK operator writes the
// agent's key into <es>-es-file-settings (and no <es>-es-secure-settings); a key rotation then
// restarts no pod, the new key is in effect (reloaded in place) before the old one is
// invalidated, no probe sample is disconnected, and CredentialsApplied names the mode.
func TestHotReloadKeyRotation(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	local := testbed.Elasticsearch{Version: "9.5.0", Mutate: func(o *unstructured.Unstructured) {
		o.SetAnnotations(map[string]string{eck.FileBasedSecureSettingsAnnotation: "true"})
	}}
	l := setupLinkLocal(ctx, t, "west", "east", "hotreload", "west-hot", func(e *v1alpha1.ClusterExport) {
		// The successor key is created 50s after the first one (the link is up by then).
		e.Spec.APIKey = &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 170 * time.Second}, RotateBefore: &metav1.Duration{Duration: 120 * time.Second}}
	}, nil, local, func(o *pod.Options) { o.VolumeSyncDelay = time.Minute })
	probe := l.connect(ctx, t)
	requireHotReloaded(ctx, t, l)
	if _, err := l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, eck.SecureSettingsSecret("ccs"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ECK kept %s (err %v): file-based secure settings are not on", eck.SecureSettingsSecret("ccs"), err)
	}
	keys := l.activeKeys()
	if len(keys) != 1 {
		t.Fatalf("want one active key, got%s", describeKeys(keys))
	}
	first := keys[0]
	restarts, started, reloads := l.localPod.Restarts(), l.localPod.StartTime(), l.localPod.SecureSettingsReloads()

	waitFor(ctx, t, 90*time.Second, "first key replaced and invalidated", func() (bool, string) {
		k, _ := l.remotePod.Node().APIKey(first.ID)
		return k.Invalidated, "first key still valid" + describeKeys(l.keys())
	})
	old, _ := l.remotePod.Node().APIKey(first.ID)
	active := l.activeKeys()
	if len(active) != 1 || active[0].ID == first.ID {
		t.Fatalf("want exactly one new active key, got%s", describeKeys(active))
	}
	second := active[0]
	t.Logf("new key %s created %s; old key invalidated %.1fs later (the new key was in effect)",
		second.ID, second.Creation.Format(time.TimeOnly), old.Invalidation.Sub(second.Creation).Seconds())
	rc := requireHotReloaded(ctx, t, l)
	if rc.Status.APIKey == nil || rc.Status.APIKey.ID != second.ID {
		t.Errorf("RemoteCluster status.apiKey = %+v, want id %s", rc.Status.APIKey, second.ID)
	}
	time.Sleep(3 * time.Second) // a window for an unwanted restart to show
	if got := l.localPod.Restarts() - restarts; got != 0 || !l.localPod.StartTime().Equal(started) {
		t.Errorf("the local Elasticsearch restarted %d times during the rotation", got)
	}
	if got := l.localPod.SecureSettingsReloads() - reloads; got < 1 {
		t.Errorf("%d in-place reloads during the rotation, want at least 1", got)
	}
	t.Logf("pods restarted during the rotation: %d; in-place reloads: %d", l.localPod.Restarts()-restarts, l.localPod.SecureSettingsReloads()-reloads)
	requireNoDisconnects(t, probe.Stop())
}

// requireHotReloaded waits until the RemoteCluster's CredentialsApplied says the key is in
// effect through file-based secure settings.
func requireHotReloaded(ctx context.Context, t *testing.T, l *link) *v1alpha1.RemoteCluster {
	t.Helper()
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionCredentialsApplied)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonHotReloaded
	})
	if err != nil {
		got, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(got))
	}
	return rc
}
