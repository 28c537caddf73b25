package exporter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
)

// collectGarbage invalidates keys this environment made that nothing justifies any more: their
// peer is no longer a Peer, their export is gone, or their peer (connected, inventory received)
// no longer imports their link. It covers what finalizers and stream messages could miss while
// the agent was down.
func (e *Exporter) collectGarbage(ctx context.Context) error {
	var firstErr error
	for _, m := range e.models() {
		if err := m.collect(ctx); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// sweepTargets are the Elasticsearch clusters a sweep looks at: every exported one, and every
// one that of (called with e.mu held) names for a link in memory (nil: none).
func (e *Exporter) sweepTargets(of func(st *linkState) *elastic.Target) map[elastic.Target]bool {
	targets := map[elastic.Target]bool{}
	for _, exp := range e.cfg.Cache.ClusterExports() {
		targets[elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}] = true
	}
	e.mu.Lock()
	for _, links := range e.links {
		for _, st := range links {
			if t := of(st); t != nil {
				targets[*t] = true
			}
		}
	}
	e.mu.Unlock()
	return targets
}

func (e *Exporter) collectIn(ctx context.Context, t elastic.Target) error {
	client, err := e.cfg.Elastic.Client(ctx, t)
	if errors.Is(err, elastic.ErrUserNotProvisioned) {
		return nil // no export left there (see invalidateLink), or not provisioned yet: the next sweep
	}
	if err != nil {
		return fmt.Errorf("failed to reach %s: %w", t, err)
	}
	keys, err := e.environmentKeys(ctx, client)
	if err != nil {
		return fmt.Errorf("failed to sweep %s: %w", t, err)
	}
	var stale []string
	for _, k := range keys {
		m := parseKeyMetadata(k.Metadata)
		peer, exportRef, linkRef := m.Peer, m.Export, m.Link
		if why := e.unjustified(peer, exportRef, linkRef); why != "" {
			e.log.Info("invalidating unused api key", "api_key_id", k.ID, "peer", peer, "link", linkRef, "reason", why)
			stale = append(stale, k.ID)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return e.invalidate(ctx, client, stale)
}

// unjustified says why a key should go, or "" when it may stay.
func (e *Exporter) unjustified(peer, exportRef, linkRef string) string {
	if !e.cfg.Cache.HasPeer(peer) {
		return "peer " + peer + " is gone"
	}
	ns, name, _ := strings.Cut(exportRef, "/")
	exp, ok := e.cfg.Cache.ClusterExportSpec(ns, name)
	if !ok {
		return "export " + exportRef + " is gone"
	}
	id, err := link.Parse(linkRef)
	if err != nil {
		return "malformed link metadata"
	}
	if !exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch) {
		return "export " + exportRef + " no longer grants " + peer + " link " + linkRef
	}
	if !e.usesKeys(exp) {
		return "export " + exportRef + " uses the " + string(e.modelOf(exp).name()) + " model, which needs no api key"
	}
	if !e.mayImport(peer, id) {
		return "peer " + peer + " no longer imports link " + linkRef
	}
	return ""
}

// mayImport says whether peer may still import link id, so that its keys stay: until the peer's
// inventory arrived since it connected, yes; then while this agent holds the import, or the
// inventory listed it (its request is on its way again: resent after a restart, or held back by
// the rate limit), and the peer did not remove it since.
func (e *Exporter) mayImport(peer string, id link.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.inventry[peer] {
		return true
	}
	if st, held := e.links[peer][id]; held {
		return !st.removed
	}
	return e.listed[peer][id]
}
