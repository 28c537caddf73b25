package exporter

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// Warnings before a rotation breaks a link. The exporting side rotates (ECK renews the transport
// CA, the agent rotates API keys) and learns from each consumer's LinkStatus what it applied, so
// it is the side that sees a consumer falling behind, and the side that can act (look at the
// consumer's agent, hold a rotation back). Each link is judged from memory and the informer
// cache only, on a LinkStatus that changes the verdict, on each export reconcile and at the
// moment the next warning would start (the export is queued for then): a deadline passes with
// no message from the consumer at all when its agent is stuck.

// LagConfig says when a consumer lags (agent settings peerLag.*); zero fields take the defaults.
type LagConfig struct {
	// CAGrace is how long a consumer may take to apply the exported Elasticsearch's current
	// transport CA once it was sent.
	CAGrace time.Duration
	// TrustExpiry warns when every transport CA a consumer trusts for the link expires within it.
	TrustExpiry time.Duration
	// KeyLead warns when the new API key is not in effect on the consumer this long before the
	// key it uses expires.
	KeyLead time.Duration
}

// Defaults of LagConfig.
const (
	DefaultLagCAGrace     = 10 * time.Minute
	DefaultLagTrustExpiry = 7 * 24 * time.Hour
	DefaultLagKeyLead     = 24 * time.Hour
)

func (c LagConfig) withDefaults() LagConfig {
	if c.CAGrace <= 0 {
		c.CAGrace = DefaultLagCAGrace
	}
	if c.TrustExpiry <= 0 {
		c.TrustExpiry = DefaultLagTrustExpiry
	}
	if c.KeyLead <= 0 {
		c.KeyLead = DefaultLagKeyLead
	}
	return c
}

// lagView is what the decision reads of one link.
type lagView struct {
	// currentCA is the fingerprint of the exported Elasticsearch's current transport CA ("" when
	// unknown); caSent is when it was first sent to the consumer (zero: not sent yet).
	currentCA string
	caSent    time.Time
	// applied are the CA fingerprints the consumer reports applied; caExpiry the NotAfter of
	// every CA sent to it that it may still hold, by fingerprint.
	applied  []string
	caExpiry map[string]time.Time
	// keyID is the newest key, sent to the consumer; appliedKey the one in effect there, which
	// expires at appliedKeyExpires (zero: never, or not known).
	keyID, appliedKey string
	appliedKeyExpires time.Time
	// writtenKey is the key the consumer holds, in effect or not.
	writtenKey string
}

// lagWarning is one way a consumer lags.
type lagWarning struct {
	reason string
	// due is when the consumer should have caught up; deadline when the link breaks (zero: not
	// known, e.g. it trusts no CA this agent sent).
	due, deadline time.Time
	detail        string
}

// evaluateLag returns the warnings standing at now, and the earliest time after now at which
// another would start (zero: none).
func evaluateLag(cfg LagConfig, v lagView, now time.Time) ([]lagWarning, time.Time) {
	cfg = cfg.withDefaults()
	var trustEnd time.Time // the latest NotAfter among the CAs the consumer trusts, if known
	for _, fp := range v.applied {
		if end, ok := v.caExpiry[fp]; ok && end.After(trustEnd) {
			trustEnd = end
		}
	}
	var candidates []lagWarning
	if v.currentCA != "" && !v.caSent.IsZero() && !slices.Contains(v.applied, v.currentCA) {
		candidates = append(candidates, lagWarning{reason: v1alpha1.ReasonPeerCANotApplied, due: v.caSent.Add(cfg.CAGrace), deadline: trustEnd,
			detail: fmt.Sprintf("has not applied transport CA %s, sent %s (grace %s)", short(v.currentCA), stamp(v.caSent), cfg.CAGrace)})
	}
	if !trustEnd.IsZero() {
		candidates = append(candidates, lagWarning{reason: v1alpha1.ReasonPeerTrustExpiring, due: trustEnd.Add(-cfg.TrustExpiry), deadline: trustEnd,
			detail: fmt.Sprintf("trusts only transport CAs that expire within %s", cfg.TrustExpiry)})
	}
	if v.appliedKey != "" && v.keyID != "" && v.appliedKey != v.keyID && !v.appliedKeyExpires.IsZero() {
		detail := fmt.Sprintf("still uses API key %s, not the new key %s", v.appliedKey, v.keyID)
		if v.writtenKey == v.keyID {
			detail += " (written, waiting for its Elasticsearch to load it)"
		}
		candidates = append(candidates, lagWarning{reason: v1alpha1.ReasonPeerKeyNotInEffect, due: v.appliedKeyExpires.Add(-cfg.KeyLead), deadline: v.appliedKeyExpires,
			detail: detail})
	}
	var out []lagWarning
	var next time.Time
	for _, w := range candidates {
		if !now.Before(w.due) {
			out = append(out, w)
		} else if next.IsZero() || w.due.Before(next) {
			next = w.due
		}
	}
	return out, next
}

// lagReasons is the verdict of evaluateLag as a comparable string ("" when none stands).
func lagReasons(ws []lagWarning) string {
	r := make([]string, len(ws))
	for i, w := range ws {
		r[i] = w.reason
	}
	return strings.Join(r, ",")
}

func short(fp string) string { return fp[:min(len(fp), 16)] }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// lagViewLocked is what the exporter knows of a link for evaluateLag; currentCA comes from the
// caller. e.mu is held.
func lagViewLocked(st *linkState, currentCA string) lagView {
	v := lagView{currentCA: currentCA, caSent: st.caSent[currentCA], caExpiry: st.caExpiry, keyID: st.keyID}
	if s := st.status; s != nil {
		v.applied = s.GetAppliedCaFingerprints()
		v.appliedKey = s.GetAppliedApiKeyId()
		v.appliedKeyExpires = st.keyExpiry[v.appliedKey]
		v.writtenKey = s.GetWrittenApiKeyId()
	}
	return v
}

// currentCA is the fingerprint of the current transport CA of an exported Elasticsearch, read
// from the informer cache ("" when not known).
func (e *Exporter) currentCA(ns, es string) string {
	s, ok := e.cfg.Cache.ECKSecret(ns, eck.TransportCertsPublic(es))
	if !ok {
		return ""
	}
	certs, err := pemutil.ParseCertificates(s.Data["ca.crt"], pemutil.Limits{})
	if err != nil || len(certs) == 0 {
		return ""
	}
	return pemutil.Fingerprint(certs[0]) // ECK's own CA comes first (transporttrust.OwnCA)
}

// lagEntry is a warning about one link.
type lagEntry struct {
	peer string
	link link.ID
	lagWarning
}

// maxLagNamed bounds the links the PeersCurrent message names.
const maxLagNamed = 3

// peerLag judges every link an export serves: the PeersCurrent condition (ok false when the
// export serves no link), the lag in seconds of each peer holding links (how long past due its
// most lagging link is, 0 when none lags), and how long until another warning may start (0:
// none).
func (e *Exporter) peerLag(exp *v1alpha1.ClusterExport) (cond metav1.Condition, ok bool, lag map[string]float64, next time.Duration) {
	now := e.cfg.Now()
	current := e.currentCA(exp.Namespace, exp.Spec.ElasticsearchRef.Name)
	lag = map[string]float64{}
	var entries []lagEntry
	var nextAt time.Time
	e.mu.Lock()
	for peer, links := range e.links {
		for id, st := range links {
			if st.req == nil || st.removed || st.req.GetExportNamespace() != exp.Namespace || st.req.GetExportName() != exp.Name {
				continue
			}
			if _, seen := lag[peer]; !seen {
				lag[peer] = 0
			}
			ws, n := evaluateLag(e.cfg.Lag, lagViewLocked(st, current), now)
			st.lagging = lagReasons(ws)
			if !n.IsZero() && (nextAt.IsZero() || n.Before(nextAt)) {
				nextAt = n
			}
			for _, w := range ws {
				entries = append(entries, lagEntry{peer: peer, link: id, lagWarning: w})
				lag[peer] = max(lag[peer], now.Sub(w.due).Seconds())
			}
		}
	}
	e.mu.Unlock()
	if !nextAt.IsZero() {
		next = max(nextAt.Sub(now), time.Second)
	}
	if len(lag) == 0 {
		return metav1.Condition{}, false, lag, next
	}
	if len(entries) == 0 {
		return kube.NewCondition(exp, v1alpha1.ConditionPeersCurrent, metav1.ConditionTrue, v1alpha1.ReasonPeersCurrent,
			"every consumer applied the current transport CA and API key, or has time left to"), true, lag, next
	}
	// The most urgent first: the earliest deadline (an unknown one first), then the longest lag.
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.deadline.Equal(b.deadline) {
			return a.deadline.IsZero() || !b.deadline.IsZero() && a.deadline.Before(b.deadline)
		}
		if !a.due.Equal(b.due) {
			return a.due.Before(b.due)
		}
		if a.peer != b.peer {
			return a.peer < b.peer
		}
		return a.link.String() < b.link.String()
	})
	named := make([]string, 0, maxLagNamed)
	for _, w := range entries[:min(len(entries), maxLagNamed)] {
		msg := fmt.Sprintf("environment %s, link %s, %s", w.peer, w.link, w.detail)
		// No relative time here: the message stays the same from pass to pass, so that a
		// lagging link costs no status write per pass (the metric carries the growing lag).
		if w.deadline.IsZero() {
			msg += ": it trusts no transport CA this agent sent, so the link cannot connect until it applies one"
		} else {
			msg += ": the link breaks at " + stamp(w.deadline)
		}
		named = append(named, msg)
	}
	msg := strings.Join(named, "; ")
	if len(entries) > maxLagNamed {
		msg += fmt.Sprintf(" (and %d more)", len(entries)-maxLagNamed)
	}
	return kube.NewCondition(exp, v1alpha1.ConditionPeersCurrent, metav1.ConditionFalse, entries[0].reason,
		msg+"; look at that environment's agent (agentctl status there)"), true, lag, next
}

// setPeersCurrent sets the condition on x, or removes it when it does not apply.
func setPeersCurrent(x *v1alpha1.ClusterExport, c metav1.Condition, ok bool) {
	if ok {
		kube.Set(x, c)
		return
	}
	kube.Remove(x, v1alpha1.ConditionPeersCurrent)
}

// reportLag sets ecklink_link_peer_lag_seconds of an export's peers and drops the series of
// peers that no longer hold links of it.
func (e *Exporter) reportLag(ns, name string, lag map[string]float64) {
	ref := ns + "/" + name
	e.lagMu.Lock()
	defer e.lagMu.Unlock()
	for peer := range e.lagSeries[ref] {
		if _, ok := lag[peer]; !ok {
			e.cfg.Metrics.ForgetPeerLag(peer, ns, name)
		}
	}
	if len(lag) == 0 {
		delete(e.lagSeries, ref)
		return
	}
	if e.lagSeries == nil {
		e.lagSeries = map[string]map[string]bool{}
	}
	peers := map[string]bool{}
	for peer, s := range lag {
		e.cfg.Metrics.PeerLag(peer, ns, name, s)
		peers[peer] = true
	}
	e.lagSeries[ref] = peers
}

// relagLocked judges a link again after its LinkStatus changed, and reports whether the verdict
// changed (then the export is to be reconciled). e.mu is held.
func (e *Exporter) relagLocked(st *linkState, currentCA string) bool {
	ws, _ := evaluateLag(e.cfg.Lag, lagViewLocked(st, currentCA), e.cfg.Now())
	r := lagReasons(ws)
	changed := r != st.lagging
	st.lagging = r
	return changed
}
