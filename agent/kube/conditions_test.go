package kube

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func TestSetCondition(t *testing.T) {
	earlier := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	existing := metav1.Condition{Type: "Connected", Status: metav1.ConditionTrue, Reason: "StreamEstablished",
		Message: "up", ObservedGeneration: 1, LastTransitionTime: earlier}
	cases := []struct {
		name           string
		set            metav1.Condition
		wantTransition bool
		wantLTTMoved   bool
	}{
		{name: "same", set: cond("True", "StreamEstablished", "up", 1), wantTransition: false},
		{name: "new message", set: cond("True", "StreamEstablished", "still up", 1), wantTransition: false},
		{name: "new generation", set: cond("True", "StreamEstablished", "up", 2), wantTransition: false},
		{name: "new reason", set: cond("True", "Other", "up", 1), wantTransition: true},
		{name: "new status", set: cond("False", "DialFailed", "no route", 1), wantTransition: true, wantLTTMoved: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conds := []metav1.Condition{existing}
			if got := SetCondition(&conds, tc.set); got != tc.wantTransition {
				t.Errorf("SetCondition = %v, want %v", got, tc.wantTransition)
			}
			if len(conds) != 1 {
				t.Fatalf("got %d conditions, want 1", len(conds))
			}
			got := conds[0]
			if got.Status != tc.set.Status || got.Reason != tc.set.Reason || got.Message != tc.set.Message ||
				got.ObservedGeneration != tc.set.ObservedGeneration {
				t.Errorf("stored %+v, want the fields of %+v", got, tc.set)
			}
			if moved := !got.LastTransitionTime.Equal(&earlier); moved != tc.wantLTTMoved {
				t.Errorf("lastTransitionTime moved = %v, want %v", moved, tc.wantLTTMoved)
			}
		})
	}
	t.Run("added", func(t *testing.T) {
		var conds []metav1.Condition
		if !SetCondition(&conds, cond("Unknown", "Reconciling", "", 1)) {
			t.Error("adding a condition is a transition")
		}
		if len(conds) != 1 || conds[0].LastTransitionTime.IsZero() {
			t.Errorf("got %+v, want one condition with a transition time", conds)
		}
	})
}

func cond(status, reason, message string, generation int64) metav1.Condition {
	return metav1.Condition{Type: "Connected", Status: metav1.ConditionStatus(status), Reason: reason,
		Message: message, ObservedGeneration: generation}
}

func TestNewConditionAndSet(t *testing.T) {
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
	c := NewCondition(rc, v1alpha1.ConditionTrustApplied, metav1.ConditionTrue, v1alpha1.ReasonApplied, "")
	if c.ObservedGeneration != 4 {
		t.Errorf("observedGeneration = %d, want 4", c.ObservedGeneration)
	}
	if !Set(rc, c) || Set(rc, c) {
		t.Error("Set must report the first set only")
	}
	if !meta.IsStatusConditionTrue(rc.Status.Conditions, v1alpha1.ConditionTrustApplied) {
		t.Errorf("condition not stored: %+v", rc.Status.Conditions)
	}
}

func TestTransitions(t *testing.T) {
	before := []metav1.Condition{cond("True", "A", "x", 1), {Type: "Ready", Status: "False", Reason: "B"}}
	after := []metav1.Condition{cond("True", "A", "other message", 2), {Type: "Ready", Status: "True", Reason: "Ready"},
		{Type: "TrustCurrent", Status: "True", Reason: "C"}}
	got := Transitions(before, after)
	if len(got) != 2 || got[0].Type != "Ready" || got[1].Type != "TrustCurrent" {
		t.Errorf("Transitions = %+v, want Ready and TrustCurrent", got)
	}
	if got := Transitions(after, after); len(got) != 0 {
		t.Errorf("Transitions of equal lists = %+v, want none", got)
	}
}

func TestReady(t *testing.T) {
	types := []string{v1alpha1.ConditionTrustApplied, v1alpha1.ConditionConnected}
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	if got := Ready(rc, types...); got.Status != metav1.ConditionUnknown || got.Reason != v1alpha1.ReasonReconciling {
		t.Errorf("Ready without conditions = %+v, want Unknown Reconciling", got)
	}
	Set(rc, NewCondition(rc, v1alpha1.ConditionTrustApplied, metav1.ConditionTrue, v1alpha1.ReasonApplied, ""))
	Set(rc, NewCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionFalse, v1alpha1.ReasonRemoteNotConnected, "handshake failed"))
	got := Ready(rc, types...)
	if got.Status != metav1.ConditionFalse || got.Reason != v1alpha1.ReasonRemoteNotConnected ||
		got.Message != "Connected is False: handshake failed" || got.ObservedGeneration != 2 {
		t.Errorf("Ready = %+v, want False from Connected", got)
	}
	Set(rc, NewCondition(rc, v1alpha1.ConditionConnected, metav1.ConditionTrue, v1alpha1.ReasonRemoteConnected, ""))
	if got := Ready(rc, types...); got.Status != metav1.ConditionTrue || got.Reason != v1alpha1.ReasonReady {
		t.Errorf("Ready = %+v, want True", got)
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name        string
		remove      []string
		wantRemoved bool
		wantLeft    []string
	}{
		{name: "one of them", remove: []string{"A"}, wantRemoved: true, wantLeft: []string{"B"}},
		{name: "both", remove: []string{"A", "B"}, wantRemoved: true, wantLeft: []string{}},
		{name: "one missing", remove: []string{"C", "B"}, wantRemoved: true, wantLeft: []string{"A"}},
		{name: "none present", remove: []string{"C"}, wantRemoved: false, wantLeft: []string{"A", "B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &v1alpha1.RemoteCluster{}
			rc.SetConditions([]metav1.Condition{cond("True", "R", "m", 1), cond("True", "R", "m", 1)})
			rc.Status.Conditions[0].Type, rc.Status.Conditions[1].Type = "A", "B"
			if got := Remove(rc, tt.remove...); got != tt.wantRemoved {
				t.Errorf("Remove = %v, want %v", got, tt.wantRemoved)
			}
			left := []string{}
			for _, c := range rc.GetConditions() {
				left = append(left, c.Type)
			}
			if !slices.Equal(left, tt.wantLeft) {
				t.Errorf("left %v, want %v", left, tt.wantLeft)
			}
		})
	}
}
