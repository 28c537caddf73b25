package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
)

// TestLagWarning: the consumer's agent (east) is paused (SIGSTOP) across one of ECK's CA
// rotations of west's exported Elasticsearch (3m CAs, renewed every minute). West, with a CA
// grace period of 3s, warns on the export (PeersCurrent False, PeerCANotApplied, an Event
// naming east and the old CA's NotAfter, ecklink_link_peer_lag_seconds above 0) before the old
// CA expires; once east runs again (SIGCONT) and applies the new CA, the warning clears.
//
// Not parallel: it pauses east and restarts west, which the other scenarios share.
func TestLagWarning(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	west.Agent.RestartWithFlag(t, "peer-lag-ca-grace", "3s", "10m")
	l := setupLink(ctx, t, "west", "east", "lag", "west-lag", nil, nil)
	l.connect(ctx, t).Stop()
	peersCurrent := func() *metav1.Condition { return west.PeersCurrent(ctx, l.ns, "logs") }
	lag := func() float64 { return west.PeerLag(ctx, l.ns, "logs", "east") }
	waitFor(ctx, t, 30*time.Second, "PeersCurrent True on west's export", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionTrue, harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})

	before, _ := west.Events(ctx, l.ns, "logs", v1alpha1.ReasonPeersCurrent)
	normal := len(before)
	old, err := l.transportCA(ctx)
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
		ca, err := l.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ca.Fingerprint != old.Fingerprint, "still " + old.Fingerprint[:16]
	})
	renewed := time.Now()
	waitFor(ctx, t, 30*time.Second, "west warns that east has not applied the new CA", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonPeerCANotApplied, harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})
	warned := time.Now()
	c := peersCurrent()
	deadline := old.NotAfter.UTC().Format(time.RFC3339)
	if !strings.Contains(c.Message, "environment east") || !strings.Contains(c.Message, deadline) {
		t.Errorf("PeersCurrent message %q does not name east and the old CA's NotAfter %s", c.Message, deadline)
	}
	lead := old.NotAfter.Sub(warned)
	t.Logf("warned %s after ECK renewed the CA, %s before the old CA's NotAfter", warned.Sub(renewed).Round(100*time.Millisecond), lead.Round(time.Second))
	if lead <= 0 {
		t.Errorf("the warning came %s after the old CA expired", -lead)
	}
	waitFor(ctx, t, 15*time.Second, "a Warning Event names east and the deadline", func() (bool, string) {
		events, err := west.Events(ctx, l.ns, "logs", v1alpha1.ReasonPeerCANotApplied)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range events {
			if e.Type == "Warning" && strings.Contains(e.Message, "environment east") && strings.Contains(e.Message, deadline) {
				return true, ""
			}
		}
		return false, "no such event"
	})
	waitFor(ctx, t, 15*time.Second, "ecklink_link_peer_lag_seconds above 0", func() (bool, string) {
		v := lag()
		return v > 0, "lag " + time.Duration(v*float64(time.Second)).String()
	})

	resume()
	cleared := waitFor(ctx, t, 60*time.Second, "the warning clears once east applied the new CA", func() (bool, string) {
		c := peersCurrent()
		return c != nil && c.Status == metav1.ConditionTrue, harness.DescribeCondition(c, v1alpha1.ConditionPeersCurrent)
	})
	t.Logf("east resumed; PeersCurrent True again %s later (old CA still valid for %s)", cleared.Round(100*time.Millisecond), time.Until(old.NotAfter).Round(time.Second))
	waitFor(ctx, t, 15*time.Second, "ecklink_link_peer_lag_seconds back to 0", func() (bool, string) {
		v := lag()
		return v == 0, "lag " + time.Duration(v*float64(time.Second)).String()
	})
	// Events are written by the recorder's broadcaster after the status it reports is stored:
	// wait for it rather than read once (CI once read the list before the Event was created).
	waitFor(ctx, t, 15*time.Second, "a Normal Event PeersCurrent for the recovery", func() (bool, string) {
		events, err := west.Events(ctx, l.ns, "logs", v1alpha1.ReasonPeersCurrent)
		if err != nil {
			return false, err.Error()
		}
		return len(events) > normal, fmt.Sprintf("%d Normal Events PeersCurrent, want one more than the %d before the pause", len(events), normal)
	})
}
