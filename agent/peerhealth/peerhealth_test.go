package peerhealth

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
)

type peers map[string]*v1alpha1.Peer

func (p peers) Peer(env string) (*v1alpha1.Peer, bool) { x, ok := p[env]; return x, ok }

func peer(name string, state v1alpha1.PeerState, reason, msg string) *v1alpha1.Peer {
	p := &v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1alpha1.PeerStatus{State: state}}
	if reason != "" {
		p.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionFalse, Reason: reason, Message: msg}}
	}
	return p
}

var world = peers{
	"west":  peer("west", v1alpha1.PeerStateActive, "", ""),
	"north": peer("north", v1alpha1.PeerStateFailing, v1alpha1.ReasonDialFailed, "failed to connect to peer north: connection refused"),
	"south": peer("south", "", "", ""),
}

func TestCondition(t *testing.T) {
	for _, tc := range []struct {
		name    string
		envs    []string
		status  metav1.ConditionStatus
		reason  string
		contain string
	}{
		{"up", []string{"west"}, metav1.ConditionTrue, v1alpha1.ReasonStreamEstablished, "with west is up"},
		{"failing", []string{"north"}, metav1.ConditionFalse, v1alpha1.ReasonPeerDisconnected, "north is Failing (DialFailed: failed to connect"},
		{"no Peer", []string{"east"}, metav1.ConditionFalse, v1alpha1.ReasonPeerNotFound, "no Peer east"},
		{"not reported yet", []string{"south"}, metav1.ConditionUnknown, v1alpha1.ReasonReconciling, "not reported"},
		{"an export's peers, one down", []string{"west", "north", "west"}, metav1.ConditionFalse, v1alpha1.ReasonPeerDisconnected, "1 of 2 peers disconnected"},
		{"an export's peers, all up", []string{"west"}, metav1.ConditionTrue, v1alpha1.ReasonStreamEstablished, "west"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := Condition(&v1alpha1.RemoteCluster{}, world, tc.envs)
			if !ok || c.Type != v1alpha1.ConditionPeerConnected || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.contain) {
				t.Fatalf("Condition() = %s %s %q, want %s %s ~%q", c.Status, c.Reason, c.Message, tc.status, tc.reason, tc.contain)
			}
		})
	}
	if _, ok := Condition(&v1alpha1.ClusterExport{}, world, nil); ok {
		t.Fatal("an export without links got a PeerConnected condition")
	}
	exp := &v1alpha1.ClusterExport{}
	Set(exp, world, []string{"west"})
	Set(exp, world, nil)
	if meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionPeerConnected) != nil {
		t.Fatal("Set kept a condition that no longer applies")
	}
}

// TestReady: Ready names the stream when the stream is down and the link is not ready, and is
// the plain summary otherwise.
func TestReady(t *testing.T) {
	set := func(rc *v1alpha1.RemoteCluster, typ string, status metav1.ConditionStatus, reason, msg string) {
		kube.Set(rc, kube.NewCondition(rc, typ, status, reason, msg))
	}
	rc := &v1alpha1.RemoteCluster{}
	set(rc, v1alpha1.ConditionConnected, metav1.ConditionFalse, v1alpha1.ReasonWaitingForPeer, "waiting for environment north to answer")
	Set(rc, world, []string{"north"})
	r := Ready(rc, v1alpha1.ConditionConnected)
	if r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonPeerDisconnected ||
		!strings.Contains(r.Message, "north is Failing") || !strings.Contains(r.Message, "meanwhile Connected is False: waiting") {
		t.Fatalf("Ready = %s %s %q", r.Status, r.Reason, r.Message)
	}
	// The link works although the stream is down: Ready stays True, PeerConnected says the rest.
	set(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected, "")
	if r := Ready(rc, v1alpha1.ConditionConnected); r.Status != metav1.ConditionTrue || r.Reason != v1alpha1.ReasonReady {
		t.Fatalf("Ready = %s %s", r.Status, r.Reason)
	}
	// No Peer: the link's own conditions already say PeerNotFound.
	rc = &v1alpha1.RemoteCluster{}
	set(rc, v1alpha1.ConditionConnected, metav1.ConditionFalse, v1alpha1.ReasonPeerNotFound, "no Peer east")
	Set(rc, world, []string{"east"})
	if r := Ready(rc, v1alpha1.ConditionConnected); r.Reason != v1alpha1.ReasonPeerNotFound {
		t.Fatalf("Ready reason = %s", r.Reason)
	}
}

func TestOnStateChange(t *testing.T) {
	obj := func(name, state string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetName(name)
		if state != "" {
			_ = unstructured.SetNestedField(u.Object, state, "status", "state")
		}
		return u
	}
	var got []string
	h := OnStateChange(func(p string) { got = append(got, p) })
	h(nil, obj("west", ""))                   // added
	h(obj("west", ""), obj("west", "Active")) // state set
	h(obj("west", "Active"), obj("west", "Active"))
	h(obj("west", "Active"), obj("west", "Failing"))
	h(obj("north", "Active"), nil) // deleted
	if strings.Join(got, ",") != "west,west,west,north" {
		t.Fatalf("changes reported: %v", got)
	}
}
