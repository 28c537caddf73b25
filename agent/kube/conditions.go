package kube

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// Conditioned is a resource with status conditions; the three ecklink kinds implement it.
type Conditioned interface {
	metav1.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// NewCondition builds a condition about obj's current spec: its ObservedGeneration is obj's
// metadata.generation. The message is user-facing (status, Events): never put secret material
// in it.
func NewCondition(obj metav1.Object, conditionType string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{
		Type:               conditionType,
		Status:             status,
		ObservedGeneration: obj.GetGeneration(),
		Reason:             reason,
		Message:            message,
	}
}

// SetCondition adds c to conditions or replaces the condition of the same type, and reports
// whether the status or the reason changed (a transition worth an Event). LastTransitionTime
// moves only when the status changes, as the API conventions want; a new message or observed
// generation is stored without counting as a transition.
func SetCondition(conditions *[]metav1.Condition, c metav1.Condition) bool {
	old := meta.FindStatusCondition(*conditions, c.Type)
	transition := old == nil || old.Status != c.Status || old.Reason != c.Reason
	meta.SetStatusCondition(conditions, c)
	return transition
}

// Set sets c on obj's conditions; see SetCondition.
func Set(obj Conditioned, c metav1.Condition) bool {
	conds := obj.GetConditions()
	changed := SetCondition(&conds, c)
	obj.SetConditions(conds)
	return changed
}

// Remove removes the conditions of the given types from obj's, and reports whether it had any.
func Remove(obj Conditioned, conditionTypes ...string) bool {
	conds := obj.GetConditions()
	removed := false
	for _, t := range conditionTypes {
		// Found first: RemoveStatusCondition copies the conditions even when it removes none,
		// and most calls (a periodic pass over every link) find nothing to remove.
		if meta.FindStatusCondition(conds, t) != nil {
			removed = meta.RemoveStatusCondition(&conds, t) || removed
		}
	}
	if removed {
		obj.SetConditions(conds)
	}
	return removed
}

// Transitions returns the conditions of after whose status or reason differ from the condition
// of the same type in before, or that before lacks, in the order of after.
func Transitions(before, after []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range after {
		old := meta.FindStatusCondition(before, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason {
			out = append(out, c)
		}
	}
	return out
}

// Ready summarizes the conditions of the given types into a Ready condition for obj: True with
// reason Ready when all are True; otherwise the status, reason and message of the first that is
// not True (Unknown with reason Reconciling when it is missing).
func Ready(obj Conditioned, types ...string) metav1.Condition {
	conds := obj.GetConditions()
	for _, t := range types {
		c := meta.FindStatusCondition(conds, t)
		switch {
		case c == nil:
			return NewCondition(obj, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonReconciling,
				t+" is not evaluated yet")
		case c.Status != metav1.ConditionTrue:
			msg := t + " is " + string(c.Status)
			if c.Message != "" {
				msg += ": " + c.Message
			}
			return NewCondition(obj, v1alpha1.ConditionReady, c.Status, c.Reason, msg)
		}
	}
	return NewCondition(obj, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady, "")
}
