package ha

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestLeaderKilledDuringCARotation: kill -9 the exporting side's leader just before ECK rotates
// the CA; the standby takes over within the lease duration, the peer still receives the new CA,
// and no _remote/info sample is disconnected.
func TestLeaderKilledDuringCARotation(t *testing.T) {
	harness.RequireWorld(t, world)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	w := world
	const lease = leaseDuration
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(w.Logs(60))
			for _, a := range w.Clusters["west"].Agents[1:] {
				t.Logf("west standby:\n%s", a.LogTail(60))
			}
		}
	})
	west, east := w.Clusters["west"], w.Clusters["east"]
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "ha", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "ha", Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, "ha", "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, "ha", "west", "ccs", "west", "west", "ha", "logs", nil); err != nil {
		t.Fatal(err)
	}
	probe := harness.StartProbe(ctx, local, "west", time.Second)
	defer probe.Stop()
	if _, err := probe.WaitConnected(ctx, 90*time.Second); err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, "ha", "west")
		t.Fatalf("%v:%s", err, harness.DescribeConditions(rc))
	}

	// Kill west's leader one second before ECK renews the CA (at notAfter - rotateBefore).
	secret, err := west.Env.Kube.CoreV1().Secrets("ha").Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current, err := testbed.FirstCertificate(secret.Data["ca.crt"])
	if err != nil {
		t.Fatal(err)
	}
	renewal := current.NotAfter.Add(-2 * time.Minute)
	leader := west.Leader(ctx)
	if leader == nil {
		t.Fatal("west has no leader")
	}
	if wait := time.Until(renewal) - time.Second; wait > 0 {
		time.Sleep(wait)
	}
	killed := time.Now()
	leader.Kill()
	t.Logf("killed west's leader (pid gone) %s before the expected CA renewal", renewal.Sub(killed).Round(100*time.Millisecond))

	var newLeader *harness.Agent
	harness.WaitFor(ctx, t, 3*lease+retryPeriod, "a standby took over", func() (bool, string) {
		newLeader = west.Leader(ctx)
		return newLeader != nil && newLeader != leader, "no other replica holds the lease"
	})
	t.Logf("standby took over %s after the kill (lease duration %s)", time.Since(killed).Round(100*time.Millisecond), lease)

	var renewed testbed.CAInfo
	harness.WaitFor(ctx, t, 90*time.Second, "ECK renewed the CA", func() (bool, string) {
		s, err := west.Env.Kube.CoreV1().Secrets("ha").Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if renewed, err = testbed.FirstCertificate(s.Data["ca.crt"]); err != nil {
			return false, err.Error()
		}
		return renewed.Fingerprint != current.Fingerprint, "the CA is the one before"
	})
	harness.WaitFor(ctx, t, 60*time.Second, "east holds the renewed CA", func() (bool, string) {
		cm, err := east.Env.Kube.CoreV1().ConfigMaps("ha").Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		certs, _ := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
		for _, c := range certs {
			if pemutil.Fingerprint(c) == renewed.Fingerprint {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d CAs, not the renewed one", len(certs))
	})
	t.Logf("east holds the renewed CA %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	// Keep sampling past the old CA's expiry: the link must hold on the new one.
	time.Sleep(time.Until(current.NotAfter) + 10*time.Second)
	r := probe.Stop()
	t.Logf("probe: %d samples, %d connected", r.Samples, r.Connected)
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	rc, err := east.CRDs.RemoteClusters().Get(ctx, "ha", "west")
	if err != nil {
		t.Fatal(err)
	}
	if !harness.HasCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue) {
		t.Errorf("RemoteCluster not connected:%s", harness.DescribeConditions(rc))
	}
}
