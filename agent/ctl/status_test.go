package ctl

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/internal/pemutil"
)

func cond(t, status, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg, LastTransitionTime: metav1.Time{Time: testNow.Add(-time.Hour)}}
}

// statusWorld is environment east: paired with west (connected) and north (waiting), one
// RemoteCluster per peer, and one export consumed by west.
func statusWorld(t *testing.T) *env {
	_, westPEM := readPEM(t, "agent-west")
	transport, _ := readPEM(t, "transport-ca")
	west := pairing.NewPeer(agentNS, "west", westPEM, []string{"agent.west.example:9400"}, true, "")
	west.Status = v1alpha1.PeerStatus{
		Conditions:    []metav1.Condition{cond(v1alpha1.ConditionConnected, "True", v1alpha1.ReasonStreamEstablished, "stream established"), cond(v1alpha1.ConditionTrustCurrent, "True", v1alpha1.ReasonCABundleCurrent, "ok")},
		LastHeartbeat: mt(testNow.Add(-3 * time.Second)), PeerVersion: "0.1.0",
		State: v1alpha1.PeerStateActive, Endpoints: []string{"agent2.west.example:9400"}, EndpointsUpdated: mt(testNow.Add(-time.Hour)),
		Stream: &v1alpha1.PeerStream{Endpoint: "agent2.west.example:9400", LastConnectTime: mt(testNow.Add(-time.Hour)), LastDisconnectTime: mt(testNow.Add(-61 * time.Minute)),
			LastError:        "failed to receive: rpc error: code = Unavailable desc = error reading from server: EOF",
			LastNackReceived: &v1alpha1.NackRecord{Resource: "status/search/ccs/west-logs", Sequence: 4, Reason: "NotRequested", Message: "no link search/ccs/west-logs from east", Time: mt(testNow.Add(-2 * time.Hour))},
			LastApplied:      &v1alpha1.AppliedUpdate{Resource: "credentials/search/ccs/west-logs", Sequence: 12, Time: mt(testNow.Add(-10 * time.Second))},
			PeerLastApplied:  &v1alpha1.AppliedUpdate{Resource: "status/search/ccs/west-logs", Sequence: 30, Time: mt(testNow.Add(-5 * time.Second))}},
	}
	north := pairing.NewPeer(agentNS, "north", westPEM, nil, false, "")
	north.Status.Conditions = []metav1.Condition{cond(v1alpha1.ConditionConnected, "False", v1alpha1.ReasonWaitingForDial, "waiting for the peer to dial this agent")}
	north.Status.State = v1alpha1.PeerStatePending
	rcWest := &v1alpha1.RemoteCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "west-logs"},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "west-logs", Peer: "west",
			Export: v1alpha1.ExportReference{Namespace: "data", Name: "logs"}},
		Status: v1alpha1.RemoteClusterStatus{
			Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, "True", v1alpha1.ReasonReady, "ready"),
				cond(v1alpha1.ConditionPeerConnected, "True", v1alpha1.ReasonStreamEstablished, "the stream with west is up"),
				cond(v1alpha1.ConditionProbeSucceeded, "True", v1alpha1.ReasonHandshakeVerified, "TLS handshake with logs.west.example:9443 ... (3ms)")},
			ProxyAddress: "logs.west.example:9443", ServerName: "logs-es-remote-cluster.data.svc",
			RemoteCertificateAuthorities: []v1alpha1.CertificateInfo{{Fingerprint: pemutil.Fingerprint(transport), Subject: transport.Subject.String(), NotAfter: mt(transport.NotAfter)}},
			APIKey:                       &v1alpha1.AppliedAPIKey{ID: "k7Q2bW0BAAAAzzzz", AppliedAt: mt(testNow.Add(-5 * time.Minute)), Expiration: mt(testNow.Add(60 * 24 * time.Hour))},
			LastSync:                     mt(testNow.Add(-10 * time.Second)),
		},
	}
	rcNorth := &v1alpha1.RemoteCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "north-logs"},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: "north-logs", Peer: "north",
			Export: v1alpha1.ExportReference{Namespace: "data", Name: "logs"}},
		Status: v1alpha1.RemoteClusterStatus{Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, "False", v1alpha1.ReasonPeerDisconnected, "the stream to north is down"),
			cond(v1alpha1.ConditionPeerConnected, "False", v1alpha1.ReasonPeerDisconnected, "the stream with north is Pending")}},
	}
	exp := &v1alpha1.ClusterExport{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs"},
		Spec:       v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"}, Peers: []string{"west"}},
		Status: v1alpha1.ClusterExportStatus{
			Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, "True", v1alpha1.ReasonReady, "ready")}, ProxyAddress: "logs.east.example:9443",
			Links: []v1alpha1.ExportLink{{Peer: "west", LocalNamespace: "search", LocalElasticsearch: "ccs", Alias: "east-logs", APIKeyID: "Zq1x2bW0BAAAyyyy",
				Created: mt(testNow.Add(-2 * time.Hour)), Expires: mt(testNow.Add(88 * 24 * time.Hour)), LastAcknowledged: mt(testNow.Add(-time.Minute)), Connected: true}},
		},
	}
	return fakeEnv(t, []runtime.Object{identityConfigMap(t, "east", []string{"agent.east.example:9400"}, "agent-east", "agent-east-next")},
		west, north, rcWest, rcNorth, exp)
}

func TestStatusGolden(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := runCtl(t, map[string]*env{"east": statusWorld(t)}, "status", "--context", "east", "-o", format)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "status."+format+".golden", out)
		})
	}
}

func TestStatusWait(t *testing.T) {
	code, _, errOut := runCtl(t, map[string]*env{"east": statusWorld(t)}, "status", "--context", "east", "--wait", "--timeout", "1s")
	if code != ExitNotReady {
		t.Fatalf("exit %d, want %d: %s", code, ExitNotReady, errOut)
	}
	for _, want := range []string{"waiting for peers and links to be ready: peer north not connected (WaitingForDial)", "gave up waiting"} {
		if !contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}
