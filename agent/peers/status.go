package peers

import (
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/protocol"
)

// expiringWithin is how close to its expiry the peer's newest agent CA makes TrustCurrent
// False (CABundleExpiringSoon): a week, or a third of the CA's lifetime for short-lived CAs.
// Peers announce a successor at two thirds of a CA's lifetime by default, so a CA this close to
// its end without a successor means the peer's rotation is stuck.
const expiringWithin = 7 * 24 * time.Hour

// dialOrder is the endpoints this agent dials for p: what the peer announced last (where it
// says it is now), then spec.endpoints (what the user or pairing wrote), without duplicates.
func dialOrder(p *v1alpha1.Peer) []string {
	out := slices.Clone(p.Status.Endpoints)
	for _, ep := range p.Spec.Endpoints {
		if !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	return out
}

// peerState derives the peering's state from the stream (info, nil when the Manager knows
// nothing of the peer yet).
func peerState(p *v1alpha1.Peer, info *peering.SessionInfo) v1alpha1.PeerState {
	switch {
	case p.DeletionTimestamp != nil:
		return v1alpha1.PeerStateTerminated
	case info != nil && info.Connected:
		return v1alpha1.PeerStateActive
	case info != nil && info.LastError != "" && info.Failure == peering.FailureTerminated:
		return v1alpha1.PeerStateTerminated
	case info != nil && info.LastError != "":
		return v1alpha1.PeerStateFailing
	case p.Spec.Dial:
		return v1alpha1.PeerStateEstablishing
	}
	return v1alpha1.PeerStatePending
}

// failureReasons maps the stream layer's failure kinds to the Connected condition's reasons.
var failureReasons = map[string]string{
	peering.FailureDial:       v1alpha1.ReasonDialFailed,
	peering.FailureHandshake:  v1alpha1.ReasonHandshakeFailed,
	peering.FailureHeartbeat:  v1alpha1.ReasonHeartbeatTimeout,
	peering.FailureStream:     v1alpha1.ReasonPeerDisconnected,
	peering.FailureTerminated: v1alpha1.ReasonPeerTerminated,
}

// connectedCondition is the Peer's Connected condition for state.
func connectedCondition(p *v1alpha1.Peer, state v1alpha1.PeerState, info *peering.SessionInfo) metav1.Condition {
	no := func(reason, msg string) metav1.Condition {
		return kube.NewCondition(p, v1alpha1.ConditionConnected, metav1.ConditionFalse, reason, msg)
	}
	switch state {
	case v1alpha1.PeerStateActive:
		msg := "stream established"
		if info.Endpoint != "" {
			msg += " to " + info.Endpoint
		}
		return kube.NewCondition(p, v1alpha1.ConditionConnected, metav1.ConditionTrue, v1alpha1.ReasonStreamEstablished, msg)
	case v1alpha1.PeerStateTerminated:
		if p.DeletionTimestamp != nil {
			return no(v1alpha1.ReasonPeerTerminated, "the Peer is being deleted: the agent ends the peering")
		}
		return no(v1alpha1.ReasonPeerTerminated, "the peering was ended: "+info.LastError)
	case v1alpha1.PeerStateFailing:
		reason, ok := failureReasons[info.Failure]
		if !ok {
			reason = v1alpha1.ReasonPeerDisconnected
		}
		return no(reason, info.LastError)
	case v1alpha1.PeerStateEstablishing:
		return no(v1alpha1.ReasonDialing, fmt.Sprintf("dialing %s: no stream yet", dialOrderText(p)))
	}
	return no(v1alpha1.ReasonWaitingForDial, "waiting for the peer to dial this agent")
}

func dialOrderText(p *v1alpha1.Peer) string {
	eps := dialOrder(p)
	if len(eps) == 0 {
		return "no endpoint"
	}
	return fmt.Sprint(eps)
}

// trustCondition is the Peer's TrustCurrent condition for the CAs trusted now (cas parsed from
// the effective bundle, or err). A refusal of the peer's latest bundle (the last Nack this agent
// sent on resource "trust", after the last bundle it applied) makes it False, the last good
// bundle staying in force.
func trustCondition(p *v1alpha1.Peer, cas []*x509.Certificate, err error, info *peering.SessionInfo, now time.Time) metav1.Condition {
	cond := func(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return kube.NewCondition(p, v1alpha1.ConditionTrustCurrent, status, reason, msg)
	}
	if err != nil {
		return cond(metav1.ConditionFalse, v1alpha1.ReasonCABundleRejected, err.Error())
	}
	var newest *x509.Certificate
	for _, ca := range cas {
		if now.Before(ca.NotAfter) && (newest == nil || ca.NotAfter.After(newest.NotAfter)) {
			newest = ca
		}
	}
	if newest == nil {
		return cond(metav1.ConditionFalse, v1alpha1.ReasonCABundleExpired, "every CA in the peer's bundle expired: pair again")
	}
	if n := rejectedTrust(info); n != nil {
		return cond(metav1.ConditionFalse, v1alpha1.ReasonCABundleRejected, fmt.Sprintf(
			"the peer's bundle of sequence %d was refused (%s: %s); the last good bundle stays trusted", n.Sequence, n.Reason, n.Message))
	}
	left, life := newest.NotAfter.Sub(now), newest.NotAfter.Sub(newest.NotBefore)
	if left < min(expiringWithin, life/3) {
		return cond(metav1.ConditionFalse, v1alpha1.ReasonCABundleExpiringSoon, fmt.Sprintf(
			"the peer's newest agent CA expires at %s and no successor arrived: check the peer agent's CA rotation", newest.NotAfter.UTC().Format(time.RFC3339)))
	}
	return cond(metav1.ConditionTrue, v1alpha1.ReasonCABundleCurrent, "the peer's agent CA bundle is valid")
}

// rejectedTrust returns the refusal of the peer's latest trust bundle, if this agent refused a
// bundle after it last applied one.
func rejectedTrust(info *peering.SessionInfo) *peering.NackRecord {
	if info == nil || info.LastNackSent == nil || info.LastNackSent.Resource != protocol.ResourceTrust {
		return nil
	}
	if a := info.LastApplied; a != nil && a.Resource == protocol.ResourceTrust && a.At.After(info.LastNackSent.At) {
		return nil
	}
	return info.LastNackSent
}

// streamStatus carries the stream's facts into status. Times and records the Manager does not
// know (after this agent restarted) keep their last reported values.
func streamStatus(prev *v1alpha1.PeerStream, info *peering.SessionInfo) *v1alpha1.PeerStream {
	out := &v1alpha1.PeerStream{}
	if prev != nil {
		out = prev.DeepCopy()
	}
	if info == nil {
		return out
	}
	ts := func(t time.Time, keep *metav1.Time) *metav1.Time {
		if t.IsZero() {
			return keep
		}
		return &metav1.Time{Time: t.Truncate(time.Second)}
	}
	out.LastConnectTime = ts(info.LastConnected, out.LastConnectTime)
	out.LastDisconnectTime = ts(info.LastDisconnected, out.LastDisconnectTime)
	if info.Connected || info.Endpoint != "" {
		out.Endpoint = info.Endpoint
	}
	if info.LastError != "" {
		out.LastError = info.LastError
	}
	if n := info.LastNackSent; n != nil {
		out.LastNackSent = nackRecord(n)
	}
	if n := info.LastNackReceived; n != nil {
		out.LastNackReceived = nackRecord(n)
	}
	if a := info.LastApplied; a != nil {
		out.LastApplied = applied(a)
	}
	if a := info.PeerLastApplied; a != nil {
		out.PeerLastApplied = applied(a)
	}
	return out
}

func nackRecord(n *peering.NackRecord) *v1alpha1.NackRecord {
	return &v1alpha1.NackRecord{Resource: n.Resource, Sequence: int64(n.Sequence), Reason: n.Reason, Message: n.Message,
		Time: &metav1.Time{Time: n.At.Truncate(time.Second)}}
}

func applied(a *peering.AppliedRecord) *v1alpha1.AppliedUpdate {
	return &v1alpha1.AppliedUpdate{Resource: a.Resource, Sequence: int64(a.Sequence), Time: &metav1.Time{Time: a.At.Truncate(time.Second)}}
}
