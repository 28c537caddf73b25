package e2e

import (
	"context"
	"crypto"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/importer"
	"github.com/ecklink/ecklink/test/esim/pod"
)

// TestFreshKeyCAWithTheKubeletsDelay: the consuming Elasticsearch's pod follows the kubelet as
// documented (mounted files change at the next sync of the pod: every minute, with jitter, or at
// once on a pod update). ECK issues a CA with a new key in west (the CA Secret deleted), which
// the copies east holds cannot verify: the agent writes the new CA and bumps
// ecklink.io/updated-at on east's pods, so the link is connected again within seconds, not at the
// kubelet's next sync. The bound (15s) is generous against the few seconds this takes and far
// below the kubelet's minute; the bump itself is checked too, since a sync may happen to fall in
// the window.
func TestFreshKeyCAWithTheKubeletsDelay(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	realistic := func(o *pod.Options) { o.VolumeSyncDelay, o.Kubelet = 0, pod.Kubelet{} } // 1m, jitter 0.5
	l := setupLinkWith(ctx, t, "west", "east", "kubelet", "west-kubelet", nil, nil, realistic)
	probe := l.connect(ctx, t)
	before, err := l.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := l.remote.Env.Kube.CoreV1().Secrets(l.ns).Delete(ctx, "logs-es-transport-ca-internal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var renewed time.Time
	waitFor(ctx, t, 60*time.Second, "ECK issued a CA with a new key", func() (bool, string) {
		ca, err := l.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		renewed = time.Now()
		return !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.Cert.PublicKey), "same key"
	})
	fresh, _ := l.transportCA(ctx)
	t.Logf("new CA key %s after the deletion", renewed.Sub(deleted).Round(100*time.Millisecond))
	// The remote serves a certificate of the new CA within a second (its pod keeps the fast
	// model); east's pod shows the new CA only after a sync. The agent bumps the pod shortly
	// after it wrote the CA (it gathers changes for 200ms), and a probe sample started after
	// the bump must be connected: the sample before the renewal does not count.
	var bumped time.Time
	waitFor(ctx, t, 15*time.Second, "east's pod marked as updated and connected again with the fresh-key CA", func() (bool, string) {
		if !l.localTrusts(ctx, fresh) {
			return false, "the fresh CA is not in east's CA ConfigMap"
		}
		p, err := l.local.Env.Kube.CoreV1().Pods(l.ns).Get(ctx, "ccs-es-default-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		at, err := time.Parse(time.RFC3339Nano, p.Annotations[importer.AnnotationUpdatedAt])
		if err != nil || at.Before(deleted) {
			return false, "east's pod not marked as updated after the new CA (annotation " + p.Annotations[importer.AnnotationUpdatedAt] + ")"
		}
		bumped = at
		return probe.ConnectedSince(at) && l.localPod.Node() != nil, "no connected sample since the pod was marked"
	})
	back := time.Since(renewed)
	t.Logf("connected again %s after ECK renewed the CA (pod marked %s after it); %d kubelet syncs of the pod",
		back.Round(100*time.Millisecond), bumped.Sub(renewed).Round(time.Millisecond), l.localPod.Syncs())
	probe.Stop()
}
