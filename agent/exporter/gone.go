package exporter

import (
	"context"
	"errors"
	"fmt"
	"maps"

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

// goneTargets are the exported Elasticsearch clusters in which keys of peer's link id may live:
// those of the API-key exports that serve it.
func (e *Exporter) goneTargets(peer string, id link.ID) []elastic.Target {
	var out []elastic.Target
	seen := map[elastic.Target]bool{}
	for _, exp := range e.grants.ClusterExports() {
		if !e.usesKeys(exp) || !exp.Spec.Serves(peer, id.Namespace, id.Elasticsearch) {
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

// invalidateGone invalidates the live keys of the links peer removed before this process held
// them. One pass serves every removal recorded when it starts, with one listing of the peer's
// keys per exported Elasticsearch, so a peer's removals, however many, cost Elasticsearch a
// listing per pass, not one per link. The keys are listed first and each link checked after: a
// link imported again meanwhile owns its keys (its own pass deals with them), and one not held
// after the listing had no pass that could have made a key the listing saw, so every key listed
// for it belongs to the removed link.
func (e *Exporter) invalidateGone(ctx context.Context, peer string) error {
	e.mu.Lock()
	taken := maps.Clone(e.gone[peer]) // the removals this pass serves
	e.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	gone := maps.Clone(taken)
	targets := map[elastic.Target][]link.ID{}
	for id := range gone {
		for _, t := range e.goneTargets(peer, id) {
			targets[t] = append(targets[t], id)
		}
	}
	// One Elasticsearch that cannot be reached holds back only the removals it serves: the others
	// are done, and the pass is retried for the rest.
	var firstErr error
	failed := func(t elastic.Target, err error) {
		for _, id := range targets[t] {
			delete(taken, id)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	type found struct {
		client *elastic.Client
		keys   map[link.ID][]string
	}
	var all []found
	for t := range targets {
		client, err := e.cfg.Elastic.Client(ctx, t)
		if errors.Is(err, elastic.ErrUserNotProvisioned) {
			continue // the exports' finalizers removed the user after invalidating their keys
		}
		if err != nil {
			failed(t, fmt.Errorf("failed to reach %s: %w", t, err))
			continue
		}
		keys, err := client.ListKeys(ctx, elastic.KeyQuery{Metadata: e.peerQuery(peer), ActiveOnly: true})
		if err != nil {
			failed(t, fmt.Errorf("failed to list the keys of peer %s in %s: %w", peer, t, err))
			continue
		}
		f := found{client: client, keys: map[link.ID][]string{}}
		for _, k := range keys {
			id, err := link.Parse(parseKeyMetadata(k.Metadata).Link)
			if err == nil && gone[id] {
				f.keys[id] = append(f.keys[id], k.ID)
			}
		}
		all = append(all, f)
	}
	e.mu.Lock()
	for id := range gone {
		if st, held := e.links[peer][id]; held && !st.removed {
			delete(gone, id) // imported again: its keys are its own pass's
		}
	}
	e.mu.Unlock()
	for _, f := range all {
		for id, ids := range f.keys {
			if !gone[id] {
				continue
			}
			if err := e.invalidate(ctx, f.client, ids); err != nil {
				delete(taken, id)
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			e.log.Info("api keys of a link removed before this agent held it invalidated", "peer", peer, "link", id.String(), "count", len(ids))
		}
	}
	e.mu.Lock()
	for id := range taken {
		delete(e.gone[peer], id)
	}
	e.mu.Unlock()
	return firstErr
}
