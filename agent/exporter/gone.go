package exporter

import (
	"context"
	"errors"
	"fmt"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
)

// A peer's removal of a link is authoritative: whatever keys were made for the link go, whether
// or not this process ever held the link. After a restart the peer resends only the latest state
// of each resource, so a link removed meanwhile arrives as a removal only, and the keys the
// previous process made for it are found in Elasticsearch by their metadata, in every exported
// Elasticsearch that serves the link, rather than left to a sweep (which keeps keys while the
// peer may still import their link, gc.go).

// markGoneLocked records that peer removed link id, which this process does not hold; false
// when the link is not served by any export (nothing was ever issued for it: a peer's flood of
// removals costs no Elasticsearch call) or the bound is reached (a sweep covers it). e.mu is held.
func (e *Exporter) markGoneLocked(peer string, id link.ID) bool {
	if len(e.goneTargets(peer, id)) == 0 {
		return false
	}
	if e.gone[peer] == nil {
		e.gone[peer] = map[link.ID]bool{}
	}
	if !e.gone[peer][id] && len(e.gone[peer]) >= maxEarlyStatuses {
		return false
	}
	e.gone[peer][id] = true
	return true
}

// exportLister lists the ClusterExports (the informer cache).
type exportLister interface {
	ClusterExports() []*v1alpha1.ClusterExport
}

// goneTargets are the exported Elasticsearch clusters in which keys of peer's link id may live:
// those of the API-key exports that serve it.
func (e *Exporter) goneTargets(peer string, id link.ID) []elastic.Target {
	var out []elastic.Target
	seen := map[elastic.Target]bool{}
	for _, exp := range e.exports.ClusterExports() {
		if exp.Spec.Model == v1alpha1.SecurityModelCertificate || !exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch) {
			continue
		}
		t := elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// invalidateGone invalidates the live keys of a link its peer removed before this process held
// it. The keys are listed first and the link checked after: a link imported again meanwhile
// owns its keys (its own pass deals with them), and one not held after the listing had no pass
// that could have made a key the listing saw, so every key listed belongs to the removed link.
func (e *Exporter) invalidateGone(ctx context.Context, peer string, id link.ID) error {
	e.mu.Lock()
	pending := e.gone[peer][id]
	e.mu.Unlock()
	if !pending {
		return nil
	}
	type found struct {
		client *elastic.Client
		ids    []string
	}
	var all []found
	for _, t := range e.goneTargets(peer, id) {
		client, err := e.cfg.Elastic.Client(ctx, t)
		if errors.Is(err, elastic.ErrUserNotProvisioned) {
			continue // the exports' finalizers removed the user after invalidating their keys
		}
		if err != nil {
			return fmt.Errorf("failed to reach %s: %w", t, err)
		}
		keys, err := client.ListKeys(ctx, elastic.KeyQuery{Metadata: e.linkQuery(peer, id), ActiveOnly: true})
		if err != nil {
			return fmt.Errorf("failed to list keys of removed link %s in %s: %w", id, t, err)
		}
		f := found{client: client}
		for _, k := range keys {
			f.ids = append(f.ids, k.ID)
		}
		if len(f.ids) > 0 {
			all = append(all, f)
		}
	}
	e.mu.Lock()
	st, held := e.links[peer][id]
	reimported := held && !st.removed
	e.mu.Unlock()
	if !reimported {
		for _, f := range all {
			if err := e.invalidate(ctx, f.client, f.ids); err != nil {
				return err
			}
			e.log.Info("api keys of a link removed before this agent held it invalidated", "peer", peer, "link", id.String(), "count", len(f.ids))
		}
	}
	e.mu.Lock()
	delete(e.gone[peer], id)
	e.mu.Unlock()
	return nil
}
