package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestNarrowGrants: an export that grants east's namespace "grants" and its Elasticsearch "ccs"
// only (spec.grants, no spec.peers) connects that RemoteCluster, with a key that expires 90 days
// after its creation by default. Another Elasticsearch of the same namespace and the same
// Elasticsearch name in another namespace get PeerNotGranted, in the very words a RemoteCluster
// of an export that does not exist gets, and no API key.
func TestNarrowGrants(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	const ns, other = "grants", "grants-other"
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*pod.Pod{}
	for _, es := range [][2]string{{ns, "ccs"}, {ns, "etl"}, {other, "ccs"}} {
		p, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: es[0], Name: es[1], Version: "9.3.2"})
		if err != nil {
			t.Fatal(err)
		}
		pods[es[0]+"/"+es[1]] = p
	}
	if _, err := west.Export(ctx, ns, "logs", "logs", remote.RemoteClusterAddress(), nil, func(e *v1alpha1.ClusterExport) {
		e.Spec.Grants = []v1alpha1.ExportGrant{{Peer: "east", Namespaces: []string{ns}, Elasticsearch: []string{"ccs"}}}
	}); err != nil {
		t.Fatal(err)
	}
	imports := []struct{ ns, es, alias, export string }{
		{ns, "ccs", "west-granted", "logs"},
		{ns, "etl", "west-other-es", "logs"},
		{other, "ccs", "west-other-ns", "logs"},
		{ns, "ccs", "west-missing", "missing"},
	}
	for _, i := range imports {
		if _, err := east.Import(ctx, i.ns, i.alias, i.es, i.alias, "west", ns, i.export, nil); err != nil {
			t.Fatal(err)
		}
	}
	granted := &link{remote: west, local: east, remotePod: remote, localPod: pods[ns+"/ccs"], ns: ns, alias: "west-granted"}
	granted.connect(ctx, t).Stop()

	// The refused ones, in the words of an export that does not exist.
	notGranted := func(rcNS, name string) string {
		rc, err := east.WaitRemoteCluster(ctx, rcNS, name, time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
			c := harness.Condition(rc, v1alpha1.ConditionReady)
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonPeerNotGranted
		})
		if err != nil {
			t.Fatal(err)
		}
		return harness.Condition(rc, v1alpha1.ConditionReady).Message
	}
	missing := notGranted(ns, "west-missing")
	t.Logf("export that does not exist: %s", missing)
	for _, i := range imports[1:3] {
		msg := notGranted(i.ns, i.alias)
		if want := strings.Replace(missing, ns+"/missing", ns+"/logs", 1); msg != want {
			t.Errorf("%s/%s: %q, want the same words as for an export that does not exist: %q", i.ns, i.alias, msg, want)
		}
	}
	time.Sleep(3 * time.Second)
	for _, k := range remote.Node().APIKeys() {
		meta, _ := k.Metadata["ecklink"].(map[string]any)
		if l, _ := meta["link"].(string); l != granted.linkID() {
			t.Errorf("API key %s made for %v, which is not granted", k.ID, l)
		}
	}
	if _, err := east.Env.Kube.CoreV1().Secrets(ns).Get(ctx, "etl-ecklink-remote-credentials", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a credentials Secret was written for etl (err=%v)", err)
	}
	if _, err := east.Env.Kube.CoreV1().Secrets(other).Get(ctx, "ccs-ecklink-remote-credentials", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a credentials Secret was written for %s/ccs (err=%v)", other, err)
	}
	if events, _ := west.Events(ctx, ns, "logs", v1alpha1.ReasonPeerNotGranted); len(events) == 0 || !strings.Contains(events[0].Message, "not granted by spec.peers or spec.grants") {
		t.Errorf("no PeerNotGranted Event on the export: %+v", events)
	}

	// Keys expire by default: 2160h after their creation, rotated 720h before.
	keys := granted.activeKeys()
	if len(keys) != 1 || keys[0].Expiration == nil || keys[0].Expiration.Sub(keys[0].Creation).Round(time.Minute) != v1alpha1.DefaultKeyLifetime {
		t.Fatalf("want one key expiring 90 days after its creation, got%s", describeKeys(keys))
	}
	rc, err := east.CRDs.RemoteClusters().Get(ctx, ns, "west-granted")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status.APIKey == nil || rc.Status.APIKey.Expiration == nil || rc.Status.APIKey.Expiration.Sub(keys[0].Creation).Round(time.Minute) != v1alpha1.DefaultKeyLifetime {
		t.Errorf("RemoteCluster status.apiKey = %+v, want the key's 90-day expiry", rc.Status.APIKey)
	}
	t.Logf("granted link connected; its key %s expires %s", keys[0].ID, keys[0].Expiration.Format(time.DateOnly))
}
