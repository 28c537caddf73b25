package certmodel

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
)

// TestCertificateLagWarning: the certificate model's consumer must add the exporter's transport
// CA to its transport trust, so west warns when it falls behind, as for the API-key model. East's
// agent is paused (SIGSTOP) across one of ECK's renewals of west's transport CA; west, with a
// CA grace period of 3s, sets PeersCurrent False on the export (PeerCANotApplied, or
// PeerTrustExpiring once the old CA is within a minute of its NotAfter) naming east, and
// ecklink_link_peer_lag_seconds rises above 0; once east runs again (SIGCONT) and trusts the
// new CA, both clear.
//
// Not parallel: it pauses east and restarts west, which the other scenarios share.
func TestCertificateLagWarning(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	west.Agent.RestartWithFlag(t, "peer-lag-ca-grace", "3s", "10m")
	l := setup(ctx, t, "certlag", "west-certlag", options{version: "8.13.4"})
	l.connect(ctx, t).Stop()
	peersCurrent := func() *metav1.Condition { return west.PeersCurrent(ctx, l.ns, "logs") }
	lag := func() float64 { return west.PeerLag(ctx, l.ns, "logs", "east") }
	waitFor(ctx, t, 60*time.Second, "PeersCurrent True on west's certificate-model export", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionTrue, harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})

	old, err := l.transportCA(ctx, true, "logs")
	if err != nil {
		t.Fatal(err)
	}
	resume, err := east.Agent.Pause()
	if err != nil {
		t.Fatal(err)
	}
	defer resume()
	t.Logf("east paused; west's CA %s expires at %s", old.Fingerprint[:16], old.NotAfter.Format(time.TimeOnly))

	waitFor(ctx, t, 90*time.Second, "ECK renewed west's transport CA", func() (bool, string) {
		ca, err := l.transportCA(ctx, true, "logs")
		if err != nil {
			return false, err.Error()
		}
		return ca.Fingerprint != old.Fingerprint, "still " + old.Fingerprint[:16]
	})
	renewed := time.Now()
	waitFor(ctx, t, 30*time.Second, "west warns that east lags behind the new CA", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionFalse &&
			(c.Reason == v1alpha1.ReasonPeerCANotApplied || c.Reason == v1alpha1.ReasonPeerTrustExpiring), harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})
	warned := time.Now()
	c := peersCurrent()
	deadline := old.NotAfter.UTC().Format(time.RFC3339)
	if !strings.Contains(c.Message, "environment east") || !strings.Contains(c.Message, "link "+l.ns+"/ccs/"+l.alias) || !strings.Contains(c.Message, deadline) {
		t.Errorf("PeersCurrent message %q does not name east, the link and the old CA's NotAfter %s", c.Message, deadline)
	}
	t.Logf("%s %s after ECK renewed the CA, %s before the old CA's NotAfter", c.Reason, warned.Sub(renewed).Round(100*time.Millisecond),
		old.NotAfter.Sub(warned).Round(time.Second))
	waitFor(ctx, t, 15*time.Second, "ecklink_link_peer_lag_seconds above 0", func() (bool, string) {
		v := lag()
		return v > 0, "lag " + time.Duration(v*float64(time.Second)).String()
	})

	resume()
	cleared := waitFor(ctx, t, 60*time.Second, "the warning clears once east trusts the new CA", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionTrue, harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})
	t.Logf("east resumed; PeersCurrent True again %s later (old CA still valid for %s)", cleared.Round(100*time.Millisecond), time.Until(old.NotAfter).Round(time.Second))
	waitFor(ctx, t, 15*time.Second, "ecklink_link_peer_lag_seconds back to 0", func() (bool, string) {
		v := lag()
		return v == 0, "lag " + time.Duration(v*float64(time.Second)).String()
	})
}
