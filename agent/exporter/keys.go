package exporter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/internal/failpoint"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// chosenKey is the key the peer should use.
type chosenKey struct {
	id string
	// identity is the key's certificate_identity, nil without.
	identity *string
	encoded  elastic.Secret // empty: the peer already holds it
	created  time.Time
	expires  time.Time
	// request is the peer's rotation request the key was made for ("" for none).
	request string
}

// errWaitForStatus means the newest key's secret is not in memory (the agent restarted) and the
// peer has not said yet whether it holds that key.
var errWaitForStatus = fmt.Errorf("waiting for the peer's link status: %w", errRetry)

// keyPass is what one ensureKey pass knows of a link: where its keys live, what they must
// grant and record, and the peer's pending rotation request.
type keyPass struct {
	client       *elastic.Client
	peer         string
	id           link.ID
	exp          *v1alpha1.ClusterExport
	access       elastic.Access
	meta         keyMetadata // what the export decides (keymeta.go)
	identity     *string     // the certificate_identity a new key carries
	now          time.Time
	req          *peerv1.ImportRequest
	rot          rotation
	lifetime     time.Duration
	rotateBefore time.Duration
	// changed says the pass updated or invalidated a key (making one does not count): the keys
	// it read are then no longer what Elasticsearch holds, and are not kept for the next pass.
	changed bool
}

// ensureKey makes sure the link has a live key with the export's access, rotates it before it
// expires, and invalidates older keys once the peer is connected with the newest.
// identity gives the certificate_identity the link's keys must carry (nil: none), from the
// newest live key (nil when there is none yet); nil identity leaves the keys' identities alone.
func (e *Exporter) ensureKey(ctx context.Context, peer string, id link.ID, exp *v1alpha1.ClusterExport, target elastic.Target, status *peerv1.LinkStatus, st *linkState, identity func(newest *elastic.Key) *string) (chosenKey, time.Duration, error) {
	p, keys, stale, err := e.startKeyPass(ctx, peer, id, exp, target, st, identity)
	if err != nil {
		return chosenKey{}, 0, err
	}
	applied := status.GetAppliedApiKeyId()
	var newest *elastic.Key
	if len(keys) > 0 {
		newest = &keys[len(keys)-1]
	}
	var enc elastic.Secret
	known := false
	if newest != nil {
		e.mu.Lock()
		enc, known = e.encoded[newest.ID]
		e.mu.Unlock()
	}
	create, err := e.needsNewKey(ctx, p, newest, known, status)
	if err != nil {
		return chosenKey{}, 0, err
	}
	deferred := p.rot.wait > 0 && !create
	if deferred {
		e.deferRotation(p)
	}
	if create {
		created, secret, err := e.createKey(ctx, p)
		if err != nil {
			return chosenKey{}, 0, err
		}
		newest = &created
		enc, known = secret, true
		keys = append(keys, *newest)
	}
	answered := parseKeyMetadata(newest.Metadata).RotationRequest
	// An emergency request: the old keys go as soon as the key made for it exists (it is sent
	// in this pass); the link is down until the peer's Elasticsearch uses the new key.
	emergency := madeForEmergency(*newest, p.rot.request)
	broken, err := e.breakOld(ctx, p.client, peer, id, keys, newest.ID, stale, applied == newest.ID && status.GetConnected(), emergency)
	if err != nil {
		return chosenKey{}, 0, err
	}
	p.changed = p.changed || broken > 0
	choice := chosenKey{id: newest.ID, created: newest.Creation, expires: newest.Expiration, identity: newest.CertificateIdentity, request: answered}
	if known {
		// Sent even when the peer holds it, so a peer that lost its state can recover it.
		choice.encoded = enc
	}
	e.recordKey(st, choice, keys)
	e.keepKeys(st, p, keys)
	var requeue time.Duration
	if !newest.Expiration.IsZero() {
		requeue = max(newest.Expiration.Sub(p.now)-p.rotateBefore, time.Second)
	}
	if deferred {
		requeue = sooner(requeue, p.rot.wait)
	}
	return choice, requeue, nil
}

// startKeyPass lists the link's live keys (oldest first), brings them to the export's access
// and identity in place (updateInPlace; stale are the keys that could not be), and decides on
// the peer's rotation request.
func (e *Exporter) startKeyPass(ctx context.Context, peer string, id link.ID, exp *v1alpha1.ClusterExport, target elastic.Target, st *linkState, identity func(newest *elastic.Key) *string) (p *keyPass, keys []elastic.Key, stale []string, err error) {
	client, err := e.cfg.Elastic.Client(ctx, target)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("failed to reach %s: %w", target, err)
	}
	e.mu.Lock()
	periodic := st.periodic
	e.mu.Unlock()
	if keys, err = e.passKeys(ctx, client, peer, id, periodic, st); err != nil {
		return nil, nil, nil, err
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Creation.Before(keys[j].Creation) })
	p = &keyPass{client: client, peer: peer, id: id, exp: exp, access: toAccess(exp.Spec.Access)}
	p.meta = e.metadata(peer, id, exp, elastic.AccessHash(p.access))
	var updated int
	p.identity, stale, updated, err = e.updateInPlace(ctx, client, peer, id, keys, p.access, p.meta, identity)
	if err != nil {
		return nil, nil, nil, err
	}
	p.changed = updated > 0
	p.now = e.cfg.Now()
	e.mu.Lock()
	p.req = st.req
	e.mu.Unlock()
	p.rot = e.rotationFor(p.req, keys, p.now) // rotatenow.go
	p.lifetime, p.rotateBefore = exp.Spec.KeyLifetime()
	return p, keys, stale, nil
}

// needsNewKey decides whether the link needs a new key: it has none, the newest was never
// delivered (invalidated here), is due for rotation, belongs to another user, no longer fits
// the export's lifetime, or the peer asked for a rotation that is due. known says whether the
// newest key's secret is in memory.
func (e *Exporter) needsNewKey(ctx context.Context, p *keyPass, newest *elastic.Key, known bool, status *peerv1.LinkStatus) (bool, error) {
	peer, id := p.peer, p.id
	switch {
	case newest == nil:
		return true, nil
	case !known && status.GetAppliedApiKeyId() != newest.ID && status.GetWrittenApiKeyId() != newest.ID:
		if status == nil {
			return false, errWaitForStatus
		}
		// Created before a restart (or by a previous leader) and never delivered: the peer holds
		// another key, and this secret went with the old process.
		if err := e.invalidate(ctx, p.client, []string{newest.ID}); err != nil {
			return false, err
		}
		p.changed = true
		e.log.Info("undelivered api key invalidated", "peer", peer, "link", id.String(), "api_key_id", newest.ID)
		return true, nil
	case !newest.Expiration.IsZero() && newest.Expiration.Sub(p.now) < p.rotateBefore:
		e.log.Info("api key rotation due", "peer", peer, "link", id.String(), "api_key_id", newest.ID, "expires", newest.Expiration)
		return true, nil
	case !ownedBy(*newest, p.client.Username()):
		e.log.Info("api key made by another user is replaced by one of the agent's user", "peer", peer, "link", id.String(),
			"api_key_id", newest.ID, "owner", newest.Owner, "user", p.client.Username())
		return true, nil
	case (p.lifetime > 0) != !newest.Expiration.IsZero():
		// The export's lifetime no longer fits the key: a key that never expires (made by
		// 0.1.0, whose default that was, or before neverExpire was unset) is replaced by an
		// expiring one, and an expiring key by one that does not expire once neverExpire is set,
		// make-before-break like any rotation.
		e.log.Info("api key replaced: the export's key lifetime changed", "peer", peer, "link", id.String(), "api_key_id", newest.ID, "expiring", p.lifetime > 0)
		return true, nil
	case p.rot.due:
		e.log.Info("api key rotation requested by the peer", "peer", peer, "link", id.String(), "api_key_id", newest.ID,
			"request", p.rot.request, "invalidate_old", p.req.GetKeyRotationInvalidateOld())
		return true, nil
	}
	return false, nil
}

// deferRotation says that the peer's rotation request waits for the link's rotate-now window.
func (e *Exporter) deferRotation(p *keyPass) {
	e.log.Info("requested api key rotation deferred: the link's key was rotated on request recently", "peer", p.peer, "link", p.id.String(),
		"request", p.rot.request, "retry_in", p.rot.wait.Round(time.Second))
	e.event(p.exp, corev1.EventTypeWarning, v1alpha1.ReasonKeyRotationDeferred, fmt.Sprintf(
		"environment %s asked to rotate the key of link %s now; the link's key was rotated on request less than %s ago, so it is rotated in %s",
		p.peer, p.id, e.cfg.RotateNowInterval, p.rot.wait.Round(time.Second)))
}

// createKey makes the link's new key, keeps its secret in memory and returns both, the key as
// listing it would. A new key answers the pending rotation request, whatever made it.
func (e *Exporter) createKey(ctx context.Context, p *keyPass) (elastic.Key, elastic.Secret, error) {
	meta := p.meta.withRotation(p.rot.request, p.rot.due && p.rot.emergency).asMap()
	created, err := p.client.CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{
		Name: link.KeyName(p.peer, p.id), Access: p.access, Expiration: p.lifetime, Metadata: meta, CertificateIdentity: p.identity,
	})
	if err != nil {
		return elastic.Key{}, "", fmt.Errorf("failed to create a key for link %s: %w", p.id, err)
	}
	failpoint.Inject(failpoint.ExporterAfterKeyCreate)
	e.mu.Lock()
	e.encoded[created.ID] = created.Encoded
	e.mu.Unlock()
	e.log.Info("api key created", "peer", p.peer, "link", p.id.String(), "api_key_id", created.ID, "expires", created.Expiration)
	if p.rot.due {
		e.event(p.exp, corev1.EventTypeNormal, v1alpha1.ReasonKeyRotationRequested, fmt.Sprintf(
			"environment %s asked to rotate the key of link %s now: new key %s (old keys go %s)", p.peer, p.id, created.ID,
			map[bool]string{true: "at once", false: "once the peer is connected with the new one"}[p.req.GetKeyRotationInvalidateOld()]))
	}
	return elastic.Key{ID: created.ID, Creation: p.now, Expiration: created.Expiration, CertificateIdentity: p.identity, Metadata: meta}, created.Encoded, nil
}

// recordKey keeps, in the link's state, the key chosen and the expiry of each live key.
func (e *Exporter) recordKey(st *linkState, choice chosenKey, keys []elastic.Key) {
	expiry := make(map[string]time.Time, len(keys))
	for _, k := range keys {
		expiry[k.ID] = k.Expiration
	}
	e.mu.Lock()
	st.keyID, st.created, st.expires, st.refusal = choice.id, choice.created, choice.expires, ""
	st.keyExpiry = expiry
	e.mu.Unlock()
}

// breakOld invalidates the keys of a link that are not the newest: those in stale at once (keys
// of another user whose access or identity is out of date: they cannot be updated, and an
// in-place update would have narrowed them at once), the others once the peer is connected with
// the newest (break after make), or at once in an emergency rotation.
// It returns how many keys it invalidated.
func (e *Exporter) breakOld(ctx context.Context, client *elastic.Client, peer string, id link.ID, keys []elastic.Key, newest string, stale []string, connected, emergency bool) (int, error) {
	if stale = slices.DeleteFunc(stale, func(kid string) bool { return kid == newest }); len(stale) > 0 {
		if err := e.invalidate(ctx, client, stale); err != nil {
			return 0, err
		}
		e.log.Info("out-of-date api keys of another user invalidated", "peer", peer, "link", id.String(), "count", len(stale))
		keys = slices.DeleteFunc(slices.Clone(keys), func(k elastic.Key) bool { return slices.Contains(stale, k.ID) })
	}
	if !connected && !emergency {
		return len(stale), nil
	}
	n, err := e.invalidateAllBut(ctx, client, keys, newest)
	if err != nil || n == 0 {
		return len(stale), err
	}
	if !connected {
		e.log.Info("previous api keys invalidated at once: emergency rotation requested by the peer", "peer", peer, "link", id.String(), "count", n)
		return len(stale) + n, nil
	}
	e.log.Info("previous api keys invalidated after the peer connected with the new one", "peer", peer, "link", id.String(), "count", n)
	return len(stale) + n, nil
}

// invalidateAllBut invalidates every key in keys but keep, and returns how many it invalidated.
func (e *Exporter) invalidateAllBut(ctx context.Context, client *elastic.Client, keys []elastic.Key, keep string) (int, error) {
	var ids []string
	for _, k := range keys {
		if k.ID != keep {
			ids = append(ids, k.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return len(ids), e.invalidate(ctx, client, ids)
}

// updateInPlace brings every live key of a link to the export's access and to the identity the
// link's step wants (returned; nil identity leaves identities alone), in place: same id, nothing
// for the peer to apply. Only the user who created a key may update it; keys another user made
// (elastic, before the agent had its own user) are replaced instead (ensureKey makes a new key
// when the newest is not the agent user's), and those out of date are returned as stale.
func (e *Exporter) updateInPlace(ctx context.Context, client *elastic.Client, peer string, id link.ID, keys []elastic.Key, access elastic.Access, meta keyMetadata, identity func(newest *elastic.Key) *string) (wantIdentity *string, stale []string, updated int, err error) {
	owned := func(k elastic.Key) bool { return ownedBy(k, client.Username()) }

	// Access and metadata changes go to every live key in place (same id, no restart on the
	// peer): a narrowed access must reach the keys still in use too, and so must metadata that
	// names what the export decides (a link moved to another export).
	for _, k := range keys {
		stored := parseKeyMetadata(k.Metadata)
		if meta.differs(stored) { // the access hash among the fields (meta.AccessHash is access's)
			if !owned(k) {
				stale = append(stale, k.ID)
				continue
			}
			if _, err := client.UpdateCrossClusterKey(ctx, k.ID, elastic.UpdateKeyRequest{Access: &access, Metadata: meta.keeping(stored).asMap()}); err != nil {
				return nil, nil, 0, fmt.Errorf("failed to update the access of key %s: %w", k.ID, err)
			}
			updated++
			e.log.Info("api key access updated in place", "peer", peer, "link", id.String(), "api_key_id", k.ID)
		}
	}

	if identity != nil {
		var newest *elastic.Key
		if len(keys) > 0 {
			newest = &keys[len(keys)-1]
		}
		wantIdentity = identity(newest)
		// Every live key, so a key that is still in use during a rotation is covered too.
		for i, k := range keys {
			if equalIdentity(k.CertificateIdentity, wantIdentity) {
				continue
			}
			if !owned(k) {
				stale = append(stale, k.ID)
				continue
			}
			if _, err := client.UpdateCrossClusterKey(ctx, k.ID, elastic.UpdateKeyRequest{CertificateIdentity: &wantIdentity}); err != nil {
				return nil, nil, 0, fmt.Errorf("failed to update the certificate_identity of key %s: %w", k.ID, err)
			}
			updated++
			keys[i].CertificateIdentity = wantIdentity
			e.log.Info("api key certificate_identity updated", "peer", peer, "link", id.String(), "api_key_id", k.ID, "required", wantIdentity != nil)
		}
	}
	slices.Sort(stale)
	return wantIdentity, slices.Compact(stale), updated, nil
}

// ownedBy says whether user made k (an unknown owner counts as user's: its update is tried).
func ownedBy(k elastic.Key, user string) bool { return k.Owner == "" || k.Owner == user }

func equalIdentity(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func (e *Exporter) invalidate(ctx context.Context, client *elastic.Client, ids []string) error {
	if _, err := client.InvalidateKeys(ctx, ids); err != nil {
		return fmt.Errorf("failed to invalidate keys %v: %w", ids, err)
	}
	e.mu.Lock()
	for _, id := range ids {
		delete(e.encoded, id)
	}
	e.mu.Unlock()
	return nil
}

// invalidateLink invalidates every live key of a link except keep.
func (e *Exporter) invalidateLink(ctx context.Context, peer string, id link.ID, st *linkState, keep string) error {
	e.mu.Lock()
	target, req := st.target, st.req
	e.mu.Unlock()
	if target == nil && req != nil {
		// Not resolved in this process (a link removed right after a restart, before its first
		// pass): the export it asked for still says where its keys live.
		if exp, ok := e.cfg.Cache.ClusterExportSpec(req.GetExportNamespace(), req.GetExportName()); ok {
			target = &elastic.Target{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
		}
	}
	if target == nil {
		// Nowhere to look: a sweep now, rather than at the next resync, finds any key made
		// for the link before a restart.
		e.queue.Add(item{kind: "gc"})
		return nil
	}
	client, err := e.cfg.Elastic.Client(ctx, *target)
	if errors.Is(err, elastic.ErrUserNotProvisioned) {
		// The agent's user goes only once no export needs the cluster, after the exports'
		// finalizers invalidated their keys: there is nothing left to invalidate.
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to reach %s: %w", target, err)
	}
	keys, err := e.linkKeys(ctx, client, peer, id)
	if err != nil {
		return err
	}
	n, err := e.invalidateAllBut(ctx, client, keys, keep)
	if err != nil || n == 0 {
		return err
	}
	e.log.Info("api keys invalidated", "peer", peer, "link", id.String(), "count", n)
	return nil
}

// passKeys lists the link's live keys for a key pass: from the resync's snapshot for a
// periodic pass when it can serve it (keysnapshot.go), from what the link's last pass left
// (keepKeys) for a pass the peer's link status queued, live otherwise.
func (e *Exporter) passKeys(ctx context.Context, client *elastic.Client, peer string, id link.ID, periodic bool, st *linkState) ([]elastic.Key, error) {
	if periodic {
		keys, ok, err := e.snaps.keys(ctx, client, peer, id, e.environmentKeys)
		if err != nil {
			return nil, err
		}
		if ok {
			return keys, nil
		}
	}
	e.mu.Lock()
	kept, statusOnly := st.kept, st.statusOnly
	e.mu.Unlock()
	if statusOnly && kept != nil && kept.usable(client, e.cfg.Now(), e.snaps.window) {
		return slices.Clone(kept.keys), nil
	}
	return e.linkKeys(ctx, client, peer, id)
}

// keptKeys are a link's live keys as its last pass left them (it read them and made at most a
// new key), for the passes its peer's link status queues next: while a link connects, the
// peer reports the key written, then applied and connected, and each report queued a pass
// that listed the link's keys again (3 to 4 POST /_security/_query/api_key per new link, in the
// way of the passes that answer). They serve only a pass the link status alone queued, within
// the key snapshot's window, through the same client; any other pass lists live, and a pass
// that updates or invalidates a key keeps nothing. A key changed behind the agent's back is seen
// at most one window late, as with the snapshot.
type keptKeys struct {
	client *elastic.Client
	at     time.Time
	keys   []elastic.Key
}

func (k *keptKeys) usable(client *elastic.Client, now time.Time, window time.Duration) bool {
	return k.client == client && now.Sub(k.at) < window && now.Sub(k.at) >= 0
}

// keepKeys keeps what the pass p leaves of the link's keys for the next status-queued pass,
// when p made no change but perhaps a new key. A periodic pass keeps nothing (an idle agent
// holds no copies of its 1,000 links' keys).
func (e *Exporter) keepKeys(st *linkState, p *keyPass, keys []elastic.Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.changed || st.periodic {
		st.kept = nil
		return
	}
	st.kept = &keptKeys{client: p.client, at: p.now, keys: slices.Clone(keys)}
}

// linkKeys lists the live keys this environment made for peer's link id.
func (e *Exporter) linkKeys(ctx context.Context, client *elastic.Client, peer string, id link.ID) ([]elastic.Key, error) {
	keys, err := client.ListKeys(ctx, elastic.KeyQuery{Metadata: e.linkQuery(peer, id), ActiveOnly: true})
	if err != nil {
		return nil, fmt.Errorf("failed to list keys of link %s: %w", id, err)
	}
	return keys, nil
}

// metadata is what the export decides for the keys of peer's link id (keymeta.go).
func (e *Exporter) metadata(peer string, id link.ID, exp *v1alpha1.ClusterExport, accessHash string) keyMetadata {
	return keyMetadata{
		ManagedBy:   managedBy,
		Environment: e.cfg.Environment,
		Peer:        peer,
		Link:        id.String(),
		Export:      exp.Namespace + "/" + exp.Name,
		AccessHash:  accessHash,
	}
}

// peerQuery selects the keys this environment made for peer.
func (e *Exporter) peerQuery(peer string) map[string]string {
	return map[string]string{
		metaQueryField(metaEnvironment): e.cfg.Environment,
		metaQueryField(metaPeer):        peer,
	}
}

// linkQuery selects the keys this environment made for peer's link id.
func (e *Exporter) linkQuery(peer string, id link.ID) map[string]string {
	q := e.peerQuery(peer)
	q[metaQueryField(metaLink)] = id.String()
	return q
}

// toAccess converts the export's access to the Elasticsearch API form.
func toAccess(a *v1alpha1.CrossClusterAccess) elastic.Access {
	var out elastic.Access
	if a == nil {
		return out
	}
	for _, s := range a.Search {
		sa := elastic.SearchAccess{Names: s.Names, AllowRestrictedIndices: s.AllowRestrictedIndices}
		if s.Query != nil && len(s.Query.Raw) > 0 {
			sa.Query = s.Query.Raw
		}
		if s.FieldSecurity != nil {
			sa.FieldSecurity = &elastic.FieldSecurity{Grant: s.FieldSecurity.Grant, Except: s.FieldSecurity.Except}
		}
		out.Search = append(out.Search, sa)
	}
	for _, r := range a.Replication {
		out.Replication = append(out.Replication, elastic.ReplicationAccess{Names: r.Names, AllowRestrictedIndices: r.AllowRestrictedIndices})
	}
	return out
}
