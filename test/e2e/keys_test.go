package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// TestKeyRotation: with a 2-minute key expiration, the key is replaced before it expires, the
// old key is invalidated only after the local side is connected with the new one, and no probe
// sample is disconnected.
func TestKeyRotation(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "keyrot", "west-keys", func(e *v1alpha1.ClusterExport) {
		e.Spec.APIKey = &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 2 * time.Minute}}
	}, nil)
	probe := l.connect(ctx, t)
	keys := l.activeKeys()
	if len(keys) != 1 {
		t.Fatalf("want one active key, got%s", describeKeys(keys))
	}
	first := keys[0]
	if first.Expiration == nil || first.Expiration.Sub(first.Creation) != 2*time.Minute {
		t.Fatalf("key %s expiration = %v, want creation + 2m", first.ID, first.Expiration)
	}
	t.Logf("first key %s expires at %s", first.ID, first.Expiration.Format(time.TimeOnly))

	// Wait until the first key is invalidated (or would have expired), and a newer key is live.
	waitFor(ctx, t, time.Until(*first.Expiration)+30*time.Second, "first key replaced and invalidated", func() (bool, string) {
		k, _ := l.remotePod.Node().APIKey(first.ID)
		return k.Invalidated, "first key still valid" + describeKeys(l.keys())
	})
	old, _ := l.remotePod.Node().APIKey(first.ID)
	if !old.Invalidation.Before(*first.Expiration) {
		t.Errorf("old key invalidated at %s, after its expiry %s: not replaced in time", old.Invalidation, first.Expiration)
	}
	active := l.activeKeys()
	if len(active) != 1 || active[0].ID == first.ID {
		t.Fatalf("want exactly one new active key, got%s", describeKeys(active))
	}
	second := active[0]
	if !second.Creation.Before(*first.Expiration) {
		t.Errorf("new key created at %s, not before the old one expired at %s", second.Creation, first.Expiration)
	}
	// The old key went only after the local nodes restarted with the new key in their keystore.
	if restarted := l.localPod.StartTime(); !old.Invalidation.After(restarted) || !restarted.After(second.Creation) {
		t.Errorf("old key invalidated at %s; local restarted with the new key at %s; new key created at %s",
			old.Invalidation.Format(time.TimeOnly), restarted.Format(time.TimeOnly), second.Creation.Format(time.TimeOnly))
	}
	rc, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status.APIKey == nil || rc.Status.APIKey.ID != second.ID {
		t.Errorf("RemoteCluster status.apiKey = %+v, want id %s", rc.Status.APIKey, second.ID)
	}
	// Past the old key's expiry the link still holds.
	select {
	case <-time.After(time.Until(*first.Expiration) + 5*time.Second):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	requireNoDisconnects(t, probe.Stop())
}

// TestAccessChange: changing the export's access updates the key in place (same id) and
// changes no secure settings (no restart of the local Elasticsearch).
func TestAccessChange(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "access", "west-access", nil, nil)
	probe := l.connect(ctx, t)
	keys := l.activeKeys()
	if len(keys) != 1 {
		t.Fatalf("want one key, got%s", describeKeys(keys))
	}
	id := keys[0].ID
	secret, err := l.localSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restarted := l.localPod.StartTime()

	if err := l.remote.UpdateClusterExport(ctx, l.ns, "logs", func(exp *v1alpha1.ClusterExport) {
		exp.Spec.Access.Search = append(exp.Spec.Access.Search, v1alpha1.SearchAccess{Names: []string{"metrics-*"}})
		exp.Spec.Access.Replication = []v1alpha1.ReplicationAccess{{Names: []string{"audit-*"}}}
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 30*time.Second, "key access updated in place", func() (bool, string) {
		k, _ := l.remotePod.Node().APIKey(id)
		if k.Access == nil || len(k.Access.Search) != 2 || len(k.Access.Replication) != 1 {
			return false, "access not updated yet"
		}
		return slices.Contains(k.Access.Search[1].Names, "metrics-*") || slices.Contains(k.Access.Search[0].Names, "metrics-*"), "metrics-* missing"
	})
	time.Sleep(5 * time.Second) // a window for any unwanted rewrite to show
	if got := l.activeKeys(); len(got) != 1 || got[0].ID != id {
		t.Errorf("keys after the access change:%s, want only %s", describeKeys(got), id)
	}
	after, err := l.localSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != secret.ResourceVersion {
		t.Errorf("the credentials Secret changed (resourceVersion %s -> %s): secure settings must not change", secret.ResourceVersion, after.ResourceVersion)
	}
	if !l.localPod.StartTime().Equal(restarted) {
		t.Error("the local Elasticsearch restarted after an access change")
	}
	requireNoDisconnects(t, probe.Stop())
}
