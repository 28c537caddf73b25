package peers

import (
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/protocol"
)

func TestDialOrder(t *testing.T) {
	p := &v1alpha1.Peer{Spec: v1alpha1.PeerSpec{Endpoints: []string{"old:9400", "b:9400"}}, Status: v1alpha1.PeerStatus{Endpoints: []string{"new:9400", "b:9400"}}}
	if got := dialOrder(p); !slices.Equal(got, []string{"new:9400", "b:9400", "old:9400"}) {
		t.Fatalf("dialOrder() = %v", got)
	}
	p.Status.Endpoints = nil
	if got := dialOrder(p); !slices.Equal(got, []string{"old:9400", "b:9400"}) {
		t.Fatalf("dialOrder() without learnt endpoints = %v", got)
	}
}

// TestPeerStateAndConnected: the state the Peer shows and the Connected condition's reason, for
// each situation of the stream.
func TestPeerStateAndConnected(t *testing.T) {
	now := metav1.Now()
	dialer := &v1alpha1.Peer{Spec: v1alpha1.PeerSpec{Environment: "west", Dial: true, Endpoints: []string{"w:9400"}}}
	acceptor := &v1alpha1.Peer{Spec: v1alpha1.PeerSpec{Environment: "east"}}
	deleting := &v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Spec: v1alpha1.PeerSpec{Environment: "west", Dial: true}}
	failed := func(kind, msg string) *peering.SessionInfo {
		return &peering.SessionInfo{LastError: msg, Failure: kind}
	}
	for _, tc := range []struct {
		name       string
		p          *v1alpha1.Peer
		info       *peering.SessionInfo
		state      v1alpha1.PeerState
		status     metav1.ConditionStatus
		reason     string
		msgContain string
	}{
		{"dialer, nothing yet", dialer, nil, v1alpha1.PeerStateEstablishing, metav1.ConditionFalse, v1alpha1.ReasonDialing, "w:9400"},
		{"acceptor, nothing yet", acceptor, nil, v1alpha1.PeerStatePending, metav1.ConditionFalse, v1alpha1.ReasonWaitingForDial, "waiting for the peer"},
		{"up", dialer, &peering.SessionInfo{Connected: true, Endpoint: "w:9400"}, v1alpha1.PeerStateActive, metav1.ConditionTrue, v1alpha1.ReasonStreamEstablished, "to w:9400"},
		{"dial failed", dialer, failed(peering.FailureDial, "failed to connect"), v1alpha1.PeerStateFailing, metav1.ConditionFalse, v1alpha1.ReasonDialFailed, "failed to connect"},
		{"handshake failed", dialer, failed(peering.FailureHandshake, "x509: unknown authority"), v1alpha1.PeerStateFailing, metav1.ConditionFalse, v1alpha1.ReasonHandshakeFailed, "x509"},
		{"heartbeats stopped", acceptor, failed(peering.FailureHeartbeat, "peer sent nothing"), v1alpha1.PeerStateFailing, metav1.ConditionFalse, v1alpha1.ReasonHeartbeatTimeout, "nothing"},
		{"stream broke", acceptor, failed(peering.FailureStream, "peer closed the stream"), v1alpha1.PeerStateFailing, metav1.ConditionFalse, v1alpha1.ReasonPeerDisconnected, "closed"},
		{"terminated by the peer", dialer, failed(peering.FailureTerminated, "peering terminated by the peer: bye"), v1alpha1.PeerStateTerminated, metav1.ConditionFalse, v1alpha1.ReasonPeerTerminated, "bye"},
		{"being deleted", deleting, &peering.SessionInfo{Connected: true}, v1alpha1.PeerStateTerminated, metav1.ConditionFalse, v1alpha1.ReasonPeerTerminated, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := peerState(tc.p, tc.info)
			c := connectedCondition(tc.p, state, tc.info)
			if state != tc.state || c.Status != tc.status || c.Reason != tc.reason || !contains(c.Message, tc.msgContain) {
				t.Fatalf("state %s, Connected=%s %s %q; want %s, %s %s ~%q", state, c.Status, c.Reason, c.Message, tc.state, tc.status, tc.reason, tc.msgContain)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func selfSigned(t *testing.T, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	return testenv.CA(t, "agent CA", notBefore, notAfter).Cert
}

// TestTrustCondition: each reason of TrustCurrent.
func TestTrustCondition(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &v1alpha1.Peer{}
	year := selfSigned(t, now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
	ending := selfSigned(t, now.Add(-300*24*time.Hour), now.Add(3*24*time.Hour))
	shortLived := selfSigned(t, now.Add(-2*time.Minute), now.Add(2*time.Minute)) // a third of 4m left: not yet
	expired := selfSigned(t, now.Add(-48*time.Hour), now.Add(-time.Hour))
	nack := &peering.NackRecord{Resource: protocol.ResourceTrust, Sequence: 7, Reason: "TrustDiscontinuity", Message: "keeps none", At: now}
	for _, tc := range []struct {
		name   string
		cas    []*x509.Certificate
		err    error
		info   *peering.SessionInfo
		status metav1.ConditionStatus
		reason string
	}{
		{"current", []*x509.Certificate{year}, nil, nil, metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent},
		{"short-lived, not yet near its end", []*x509.Certificate{shortLived}, nil, nil, metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent},
		{"expiring without a successor", []*x509.Certificate{ending}, nil, nil, metav1.ConditionFalse, v1alpha1.ReasonCABundleExpiringSoon},
		{"a successor arrived", []*x509.Certificate{ending, year}, nil, nil, metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent},
		{"every CA expired", []*x509.Certificate{expired}, nil, nil, metav1.ConditionFalse, v1alpha1.ReasonCABundleExpired},
		{"unparsable", nil, errors.New("no PEM certificate found"), nil, metav1.ConditionFalse, v1alpha1.ReasonCABundleRejected},
		{"the peer's latest bundle refused", []*x509.Certificate{year}, nil, &peering.SessionInfo{LastNackSent: nack}, metav1.ConditionFalse, v1alpha1.ReasonCABundleRejected},
		{"a good bundle applied after the refusal", []*x509.Certificate{year}, nil, &peering.SessionInfo{LastNackSent: nack,
			LastApplied: &peering.AppliedRecord{Resource: protocol.ResourceTrust, Sequence: 8, At: now.Add(time.Second)}}, metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent},
		{"a refusal of another resource", []*x509.Certificate{year}, nil, &peering.SessionInfo{LastNackSent: &peering.NackRecord{Resource: "import/a/b/c", Reason: "X", At: now}},
			metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := trustCondition(p, tc.cas, tc.err, tc.info, now)
			if c.Status != tc.status || c.Reason != tc.reason {
				t.Fatalf("TrustCurrent=%s %s (%s), want %s %s", c.Status, c.Reason, c.Message, tc.status, tc.reason)
			}
		})
	}
}

// TestStreamStatus: what the Manager knows goes into status; what it does not know (after a
// restart of this agent) keeps the values reported before.
func TestStreamStatus(t *testing.T) {
	at := time.Date(2030, 1, 1, 10, 0, 0, 500, time.UTC)
	prev := &v1alpha1.PeerStream{Endpoint: "old:9400", LastError: "earlier", LastConnectTime: &metav1.Time{Time: at.Add(-time.Hour)},
		LastApplied: &v1alpha1.AppliedUpdate{Resource: "trust", Sequence: 3}}
	if got := streamStatus(prev, nil); got.Endpoint != "old:9400" || got.LastError != "earlier" || got.LastApplied.Sequence != 3 {
		t.Fatalf("without stream facts: %+v", got)
	}
	info := &peering.SessionInfo{Connected: true, Endpoint: "new:9400", LastConnected: at,
		LastNackReceived: &peering.NackRecord{Resource: "status/a/b/c", Sequence: 2, Reason: "NotRequested", Message: "m", At: at},
		PeerLastApplied:  &peering.AppliedRecord{Resource: "credentials/a/b/c", Sequence: 9, At: at}}
	got := streamStatus(prev, info)
	if got.Endpoint != "new:9400" || !got.LastConnectTime.Time.Equal(at.Truncate(time.Second)) || got.LastError != "earlier" ||
		got.LastNackReceived.Reason != "NotRequested" || got.PeerLastApplied.Sequence != 9 || got.LastApplied.Sequence != 3 || got.LastNackSent != nil {
		t.Fatalf("streamStatus() = %+v", got)
	}
	if prev.Endpoint != "old:9400" {
		t.Fatal("streamStatus changed its input")
	}
}
