// Package peerhealth brings the state of the peering streams to the resources operators look
// at: the PeerConnected condition of RemoteClusters and ClusterExports, read from their Peers'
// status, and a Ready condition that names the stream when the stream is why a link is not
// ready. Without the stream, CA and API key updates do not flow, while the Elasticsearch link
// itself may still work: PeerConnected does not count towards Ready.
package peerhealth

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
)

// PeerLister reads Peers (the informer cache).
type PeerLister interface {
	Peer(environment string) (*v1alpha1.Peer, bool)
}

// maxNamed bounds the peers a message names.
const maxNamed = 5

// Condition returns obj's PeerConnected condition over the streams with envs (one peer for a
// RemoteCluster, the peers holding links for a ClusterExport), and false when envs is empty:
// the condition then does not apply.
func Condition(obj kube.Conditioned, peers PeerLister, envs []string) (metav1.Condition, bool) {
	envs = slices.Compact(slices.Sorted(slices.Values(envs)))
	if len(envs) == 0 {
		return metav1.Condition{}, false
	}
	var down []string
	reason, status := v1alpha1.ReasonPeerDisconnected, metav1.ConditionFalse
	for _, env := range envs {
		p, ok := peers.Peer(env)
		switch {
		case !ok:
			down = append(down, fmt.Sprintf("no Peer %s: pair with it first (agentctl pair)", env))
			if len(envs) == 1 {
				reason = v1alpha1.ReasonPeerNotFound
			}
		case p.Status.State == "":
			down = append(down, fmt.Sprintf("the agent has not reported on the stream with %s yet", env))
			if len(envs) == 1 {
				reason, status = v1alpha1.ReasonReconciling, metav1.ConditionUnknown
			}
		case p.Status.State != v1alpha1.PeerStateActive:
			down = append(down, describe(p))
		}
	}
	if len(down) == 0 {
		return kube.NewCondition(obj, v1alpha1.ConditionPeerConnected, metav1.ConditionTrue, v1alpha1.ReasonStreamEstablished,
			"the stream with "+strings.Join(envs, ", ")+" is up"), true
	}
	msg := strings.Join(down[:min(len(down), maxNamed)], "; ")
	if len(envs) > 1 {
		msg = fmt.Sprintf("%d of %d peers disconnected: %s", len(down), len(envs), msg)
	}
	return kube.NewCondition(obj, v1alpha1.ConditionPeerConnected, status, reason, msg+" (CA and API key updates wait for the stream)"), true
}

// describe says how the stream with p stands, from its status.
func describe(p *v1alpha1.Peer) string {
	msg := fmt.Sprintf("the stream with %s is %s", p.Name, p.Status.State)
	if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionConnected); c != nil && c.Message != "" {
		msg += " (" + c.Reason + ": " + clip(c.Message, 300) + ")"
	}
	if s := p.Status.Stream; s != nil && s.LastDisconnectTime != nil {
		msg += " since " + s.LastDisconnectTime.UTC().Format("2006-01-02T15:04:05Z")
	}
	return msg
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Set sets PeerConnected on obj, or removes it when it does not apply.
func Set(obj kube.Conditioned, peers PeerLister, envs []string) {
	c, ok := Condition(obj, peers, envs)
	if ok {
		kube.Set(obj, c)
		return
	}
	kube.Remove(obj, v1alpha1.ConditionPeerConnected)
}

// Ready is kube.Ready over types, except that a Ready that is not True says so when the stream
// is down (PeerConnected False, PeerDisconnected): the stream is then the likely cause, and the
// first failing condition follows in the message.
func Ready(obj kube.Conditioned, types ...string) metav1.Condition {
	ready := kube.Ready(obj, types...)
	pc := meta.FindStatusCondition(obj.GetConditions(), v1alpha1.ConditionPeerConnected)
	if ready.Status == metav1.ConditionTrue || pc == nil || pc.Status != metav1.ConditionFalse || pc.Reason != v1alpha1.ReasonPeerDisconnected {
		return ready
	}
	msg := "PeerConnected is False: " + pc.Message
	if ready.Message != "" {
		msg += "; meanwhile " + ready.Message
	}
	return kube.NewCondition(obj, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonPeerDisconnected, msg)
}

// OnStateChange returns a Peer event handler (cache.OnPeer) that calls changed with the peer's
// environment when its status.state changed, was added or deleted: the resources whose
// PeerConnected depends on it are then evaluated again.
func OnStateChange(changed func(peer string)) func(old, new any) {
	state := func(o any) (string, string, bool) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return "", "", false
		}
		s, _, _ := unstructured.NestedString(u.Object, "status", "state")
		return u.GetName(), s, true
	}
	return func(old, new any) {
		on, os, oldOK := state(old)
		nn, ns, newOK := state(new)
		switch {
		case oldOK && newOK && os == ns:
		case newOK:
			changed(nn)
		case oldOK:
			changed(on)
		}
	}
}
