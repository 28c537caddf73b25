package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// addUserAlias configures a remote cluster by hand in the local Elasticsearch, which the agent
// must never touch.
func addUserAlias(ctx context.Context, t *testing.T, l *link) {
	t.Helper()
	c, err := l.localPod.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "/_cluster/settings", strings.NewReader(
		`{"persistent":{"cluster.remote.users-own.mode":"proxy","cluster.remote.users-own.proxy_address":"192.0.2.1:9443"}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Perform(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("failed to add the user's alias: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestRemoveRemoteClusterThenExport: deleting the RemoteCluster invalidates its keys on the
// remote and removes the alias settings, the Secret entry and the CA entry locally; the user's
// own alias stays. Then, with a new RemoteCluster, deleting the export does the same.
func TestRemoveRemoteClusterThenExport(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "remove", "west-rm", nil, nil)
	addUserAlias(ctx, t, l)
	probe := l.connect(ctx, t)
	probe.Stop()
	if len(l.activeKeys()) != 1 {
		t.Fatalf("want one key, got%s", describeKeys(l.keys()))
	}

	// 1. The RemoteCluster goes.
	if err := l.local.CRDs.RemoteClusters().Delete(ctx, l.ns, l.alias); err != nil {
		t.Fatal(err)
	}
	l.requireRemoved(ctx, t, "after deleting the RemoteCluster")
	waitFor(ctx, t, 30*time.Second, "RemoteCluster finalized", func() (bool, string) {
		_, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		return apierrors.IsNotFound(err), "still there"
	})

	// 2. A new RemoteCluster connects again; then the export goes.
	if _, err := l.local.Import(ctx, l.ns, l.alias, "ccs", l.alias, "west", l.ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	l.connect(ctx, t).Stop()
	if err := l.remote.CRDs.ClusterExports().Delete(ctx, l.ns, "logs"); err != nil {
		t.Fatal(err)
	}
	l.requireRemoved(ctx, t, "after deleting the export")
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonPeerNotGranted
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RemoteCluster after the export went: %s", harness.DescribeConditions(rc))
}

// requireRemoved waits until the link left nothing behind on either side.
func (l *link) requireRemoved(ctx context.Context, t *testing.T, when string) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, "keys invalidated "+when, func() (bool, string) {
		return len(l.activeKeys()) == 0, "active:" + describeKeys(l.activeKeys())
	})
	waitFor(ctx, t, 30*time.Second, "alias settings removed "+when, func() (bool, string) {
		aliases := l.remoteAliases()
		return !slices.Contains(aliases, l.alias), strings.Join(aliases, ",")
	})
	if !slices.Contains(l.remoteAliases(), "users-own") {
		t.Errorf("%s: the user's own alias users-own was removed", when)
	}
	waitFor(ctx, t, 30*time.Second, "credentials and CA entries removed "+when, func() (bool, string) {
		s, serr := l.localSecret(ctx)
		cm, cerr := l.localConfigMap(ctx)
		if serr == nil && len(s.Data["cluster.remote."+l.alias+".credentials"]) > 0 {
			return false, "Secret entry still there"
		}
		if cerr == nil && harness.AliasCABundle(cm, l.alias) != "" {
			return false, "CA entry still there"
		}
		return true, ""
	})
}

// TestNotGranted: an export that does not name the importing environment gives it nothing, and
// the RemoteCluster's condition says why.
func TestNotGranted(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "denied", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "denied", Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, "denied", "logs", "logs", remote.RemoteClusterAddress(), []string{"north"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, "denied", "west-denied", "ccs", "west-denied", "west", "denied", "logs", nil); err != nil {
		t.Fatal(err)
	}
	rc, err := east.WaitRemoteCluster(ctx, "denied", "west-denied", 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonPeerNotGranted
	})
	if err != nil {
		t.Fatal(err)
	}
	c := harness.Condition(rc, v1alpha1.ConditionReady)
	if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "grants access to environment east") {
		t.Errorf("Ready condition = %+v, want False saying no export grants east", c)
	}
	time.Sleep(3 * time.Second)
	if n := len(remote.Node().APIKeys()); n != 0 {
		t.Errorf("%d API keys created in west for a refused import", n)
	}
	if _, err := east.Env.Kube.CoreV1().Secrets("denied").Get(ctx, "ccs-ecklink-remote-credentials", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a credentials Secret was created for a refused import (err=%v)", err)
	}
}
