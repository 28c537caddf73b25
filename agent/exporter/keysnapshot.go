package exporter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
)

// keySnapshots let the periodic pass read each link's keys from one listing per exported
// Elasticsearch instead of one query per link: at 1,000 links a resync cost 1,000
// POST /_security/_query/api_key, now it costs one paged query. A snapshot is all of this
// environment's live keys in one Elasticsearch, taken by the first resync pass that needs it.
// It serves only passes queued by the resync alone, each link once, for half a resync period,
// and only while no key was written through that client since it was taken
// (elastic.Client.KeyWrites); otherwise the pass lists its link's keys live, as every other
// pass does. At most one snapshot is taken per client and window, so passes that write (all
// links rotating at once) fall back to the per-link query rather than relisting everything.
// A key changed behind the agent's back (a user invalidating it by hand) is seen at most one
// window late, as a live query at the start of the round would have.
type keySnapshots struct {
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	byClient map[*elastic.Client]*keySnapshot
}

type keySnapshot struct {
	at     time.Time
	writes uint64                   // the client's KeyWrites when the listing started
	keys   map[string][]elastic.Key // by snapshotKey
	served map[string]bool          // links whose pass read their keys from it
}

func newKeySnapshots(window time.Duration, now func() time.Time) *keySnapshots {
	return &keySnapshots{window: window, now: now, byClient: map[*elastic.Client]*keySnapshot{}}
}

func snapshotKey(peer string, id string) string { return peer + "\x00" + id }

// keys returns the link's keys from the client's snapshot, taking one with list when the client
// has none in this window. ok is false when the pass must list its keys live.
func (s *keySnapshots) keys(ctx context.Context, client *elastic.Client, peer string, id link.ID, list func(context.Context, *elastic.Client) ([]elastic.Key, error)) (keys []elastic.Key, ok bool, err error) {
	k := snapshotKey(peer, id.String())
	s.mu.Lock()
	s.pruneLocked()
	snap := s.byClient[client]
	s.mu.Unlock()
	if snap == nil {
		if snap, err = s.take(ctx, client, list); err != nil {
			return nil, false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap.served[k] || snap.writes != client.KeyWrites() {
		return nil, false, nil
	}
	snap.served[k] = true
	keys = snap.keys[k]
	delete(snap.keys, k)
	return keys, true, nil
}

// take lists every live key of this environment through client and keeps them by link.
func (s *keySnapshots) take(ctx context.Context, client *elastic.Client, list func(context.Context, *elastic.Client) ([]elastic.Key, error)) (*keySnapshot, error) {
	snap := &keySnapshot{at: s.now(), writes: client.KeyWrites(), keys: map[string][]elastic.Key{}, served: map[string]bool{}}
	all, err := list(ctx, client)
	if err != nil {
		return nil, err
	}
	for _, k := range all {
		m := parseKeyMetadata(k.Metadata)
		sk := snapshotKey(m.Peer, m.Link)
		snap.keys[sk] = append(snap.keys[sk], k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byClient[client]; old != nil {
		return old, nil // another pass took one meanwhile: one per window
	}
	s.byClient[client] = snap
	return snap, nil
}

// pruneLocked forgets snapshots older than the window (clients rebuilt after a credentials or
// CA change leave theirs behind, and are forgotten the same way).
func (s *keySnapshots) pruneLocked() {
	now := s.now()
	for c, snap := range s.byClient {
		if now.Sub(snap.at) >= s.window {
			delete(s.byClient, c)
		}
	}
}

// environmentKeys lists every live key this environment made in one Elasticsearch.
func (e *Exporter) environmentKeys(ctx context.Context, client *elastic.Client) ([]elastic.Key, error) {
	keys, err := client.ListKeys(ctx, elastic.KeyQuery{ActiveOnly: true, Metadata: map[string]string{metaQueryField(metaEnvironment): e.cfg.Environment}})
	if err != nil {
		return nil, fmt.Errorf("failed to list this environment's keys: %w", err)
	}
	return keys, nil
}
