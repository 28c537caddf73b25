package certmodel

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/test/harness"
)

// TestDeprecationWarning: with the certificate model, both the ClusterExport and the
// RemoteCluster carry a warning condition that does not hold Ready back, and a Warning Event,
// saying that Elastic deprecates the model and pointing to the API-key model.
func TestDeprecationWarning(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := setup(ctx, t, "deprecated", "west-dep", options{version: "8.13.4"})
	l.connect(ctx, t).Stop()

	check := func(what string, obj kube.Conditioned, c *harness.Cluster) {
		t.Helper()
		cond := harness.Condition(obj, v1alpha1.ConditionSecurityModelCurrent)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonDeprecatedSecurityModel ||
			!strings.Contains(cond.Message, "deprecated by Elastic") || !strings.Contains(cond.Message, "apiKey") {
			t.Errorf("%s: condition %s = %+v", what, v1alpha1.ConditionSecurityModelCurrent, cond)
		}
		if !harness.HasCondition(obj, v1alpha1.ConditionReady, metav1.ConditionTrue) {
			t.Errorf("%s: not Ready:%s", what, harness.DescribeConditions(obj))
		}
		var events []corev1.Event
		waitFor(ctx, t, 20*time.Second, what+": deprecation Event", func() (bool, string) {
			events, _ = c.Events(ctx, l.ns, obj.GetName(), v1alpha1.ReasonDeprecatedSecurityModel)
			return len(events) > 0, "none yet"
		})
		e := events[0]
		if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, "apiKey") {
			t.Errorf("%s: Event %s %q", what, e.Type, e.Message)
		}
		t.Logf("%s: Event %s %s: %s", what, e.Type, e.Reason, e.Message)
	}
	exp, err := l.remote.WaitClusterExport(ctx, l.ns, "logs", 30*time.Second, func(x *v1alpha1.ClusterExport) bool {
		return harness.Condition(x, v1alpha1.ConditionSecurityModelCurrent) != nil && harness.HasCondition(x, v1alpha1.ConditionReady, metav1.ConditionTrue)
	})
	if err != nil {
		t.Fatal(err)
	}
	if harness.Condition(exp, v1alpha1.ConditionRemoteClusterServerEnabled) != nil {
		t.Error("the export reports RemoteClusterServerEnabled, which the certificate model does not use")
	}
	check("ClusterExport", exp, l.remote)
	rc, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status.Model != v1alpha1.SecurityModelCertificate || rc.Status.APIKey != nil || rc.Status.ProxyAddress != l.remotePod.TransportAddress() ||
		rc.Status.ServerName != "logs-es-transport."+l.ns+".svc" {
		t.Errorf("RemoteCluster status: model=%s apiKey=%v proxy=%s serverName=%s", rc.Status.Model, rc.Status.APIKey, rc.Status.ProxyAddress, rc.Status.ServerName)
	}
	check("RemoteCluster", rc, l.local)
}

// TestRemovingTheLinkRemovesThePeerCAs: both sides name their own ConfigMap of trusted transport
// CAs, holding a CA of the user's. Deleting the RemoteCluster removes the peer CA from both
// ConfigMaps (and so from ECK's bundles) and the alias from east's settings, while the user CAs,
// the user's wiring and the user's own alias stay. A new RemoteCluster connects again; deleting
// the export then does the same.
func TestRemovingTheLinkRemovesThePeerCAs(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := setup(ctx, t, "remove", "west-rm", options{version: "8.13.4", remoteUserCAs: true, localUserCAs: true})
	addUserAlias(ctx, t, l)
	l.connect(ctx, t).Stop()
	l.requireTrusted(ctx, t)

	// 1. The RemoteCluster goes.
	if err := l.local.CRDs.RemoteClusters().Delete(ctx, l.ns, l.alias); err != nil {
		t.Fatal(err)
	}
	took := l.requireUntrusted(ctx, t, "after deleting the RemoteCluster")
	t.Logf("peer CAs gone from both sides %s after the RemoteCluster was deleted", took.Round(100*time.Millisecond))
	waitFor(ctx, t, 30*time.Second, "RemoteCluster finalized", func() (bool, string) {
		_, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		return apierrors.IsNotFound(err), "still there"
	})

	// 2. A new RemoteCluster connects again; then the export goes.
	if _, err := l.local.Import(ctx, l.ns, l.alias, "ccs", l.alias, "west", l.ns, "logs", askCertificate); err != nil {
		t.Fatal(err)
	}
	l.connect(ctx, t).Stop()
	l.requireTrusted(ctx, t)
	if err := l.remote.CRDs.ClusterExports().Delete(ctx, l.ns, "logs"); err != nil {
		t.Fatal(err)
	}
	took = l.requireUntrusted(ctx, t, "after deleting the export")
	t.Logf("peer CAs gone from both sides %s after the export was deleted", took.Round(100*time.Millisecond))
}

// requireTrusted checks that each side's user ConfigMap holds the user's CA and the peer's.
func (l *certLink) requireTrusted(ctx context.Context, t *testing.T) {
	t.Helper()
	westCA, _ := ownCA(ctx, l.remote, l.ns, "logs")
	eastCA, _ := ownCA(ctx, l.local, l.ns, "ccs")
	waitFor(ctx, t, 30*time.Second, "both sides trust each other", func() (bool, string) {
		_, remoteFPs, _ := l.remoteTrust(ctx)
		_, localFPs, _ := l.localTrust(ctx)
		ok := contains(remoteFPs, l.remoteUserCA) && contains(remoteFPs, eastCA) && contains(localFPs, l.localUserCA) && contains(localFPs, westCA)
		return ok, "west " + short(remoteFPs) + ", east " + short(localFPs)
	})
}

// requireUntrusted waits until the link left no trust behind on either side, and checks what the
// user owns is untouched.
func (l *certLink) requireUntrusted(ctx context.Context, t *testing.T, when string) time.Duration {
	t.Helper()
	took := waitFor(ctx, t, 45*time.Second, "peer CAs removed "+when, func() (bool, string) {
		remoteCM, remoteFPs, err1 := l.remoteTrust(ctx)
		localCM, localFPs, err2 := l.localTrust(ctx)
		westECK, err3 := l.remote.TransportCAs(ctx, l.ns, "logs")
		eastECK, err4 := l.local.TransportCAs(ctx, l.ns, "ccs")
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				return false, err.Error()
			}
		}
		switch {
		case remoteCM == nil || localCM == nil:
			return false, "a user ConfigMap was deleted"
		case len(remoteFPs) != 1 || remoteFPs[0] != l.remoteUserCA:
			return false, "west's user-cas holds " + short(remoteFPs)
		case len(localFPs) != 1 || localFPs[0] != l.localUserCA:
			return false, "east's user-cas holds " + short(localFPs)
		case remoteCM.Annotations["ecklink.io/transport-cas"] != "" || localCM.Annotations["ecklink.io/transport-cas"] != "":
			return false, "the agent's record is still on a user ConfigMap"
		case len(westECK) != 2 || len(eastECK) != 2:
			// ECK's bundle: its own CA and the user's, nothing else.
			return false, "ECK's bundles: west " + short(westECK) + ", east " + short(eastECK)
		case contains(l.aliases(), l.alias):
			return false, "alias still configured"
		}
		return true, ""
	})
	for _, c := range []*harness.Cluster{l.remote, l.local} {
		es := map[*harness.Cluster]string{l.remote: "logs", l.local: "ccs"}[c]
		name, ann, err := wiredTo(ctx, c, l.ns, es)
		if err != nil {
			t.Fatal(err)
		}
		if name != "user-cas" || ann["ecklink.io/transport-ca-wiring"] != "" {
			t.Errorf("%s: %s names ConfigMap %q (annotations %v), want the user's wiring untouched", c.Name, es, name, ann)
		}
		if cm, _, _ := c.ConfigMapCAs(ctx, l.ns, es+"-ecklink-transport-ca"); cm != nil {
			t.Errorf("%s: the agent created ConfigMap %s though the user names one", c.Name, cm.Name)
		}
	}
	if !contains(l.aliases(), "users-own") {
		t.Errorf("%s: the user's own alias users-own was removed", when)
	}
	return took
}

// addUserAlias configures a remote cluster by hand in east's Elasticsearch, which the agent must
// never touch.
func addUserAlias(ctx context.Context, t *testing.T, l *certLink) {
	t.Helper()
	c, err := l.localPod.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "/_cluster/settings", strings.NewReader(
		`{"persistent":{"cluster.remote.users-own.mode":"proxy","cluster.remote.users-own.proxy_address":"192.0.2.1:9300"}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Perform(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("failed to add the user's alias: %v %v", err, resp)
	}
	resp.Body.Close()
}
