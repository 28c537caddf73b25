package exporter

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The CA path, remote side. A renewed transport CA of an exported Elasticsearch goes out
// without a round trip to Elasticsearch: to a peer that announced the "export-ca" capability as
// one ExportCA update per exported Elasticsearch (exportca/<id>), which the credentials of all
// its links name in ca_ref; to an older peer as the credentials of each link with the new bundle
// inline, as 0.1.0 expects. Every publication of a link's credentials or of a shared bundle
// reads the bundle from the informer cache at that moment, under pubMu, so that concurrent
// workers cannot publish an older bundle after a newer one.

// PeerConnected forgets the peer's last inventory (until a new one arrives, nothing is
// collected) and records the capabilities it announced; when they changed, its links are
// answered again in the form it understands.
func (e *Exporter) PeerConnected(peer string, capabilities []string) {
	e.mu.Lock()
	e.inventry[peer] = false
	changed := !slices.Equal(e.caps[peer], capabilities)
	e.caps[peer] = slices.Clone(capabilities)
	var ids []link.ID
	if changed {
		for id := range e.links[peer] {
			ids = append(ids, id)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.enqueue(item{kind: "link", peer: peer, link: id}, trigPeerCaps)
	}
}

// sharesCALocked reports whether the peer takes shared CA bundles. e.mu is held.
func (e *Exporter) sharesCALocked(peer string) bool {
	return slices.Contains(e.caps[peer], peering.CapabilityExportCA)
}

// publishCredentials sends a link's credentials with the newest CA bundle of its exported
// Elasticsearch (shared or inline, see above), and records them as sent.
// With creds nil it sends the credentials last sent, if any (a CA-only update).
func (e *Exporter) publishCredentials(peer string, id link.ID, st *linkState, creds *peerv1.Credentials) error {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	e.mu.Lock()
	target, share := st.target, e.sharesCALocked(peer)
	if creds == nil {
		creds = st.sent
	}
	e.mu.Unlock()
	if creds == nil {
		return nil // refused or removed meanwhile
	}
	creds = proto.Clone(creds).(*peerv1.Credentials)
	wire := creds
	ref := ""
	if target != nil {
		// Both models carry the exported Elasticsearch's own transport CA: the certificate model's
		// consumer adds it to its transport trust, and must get the renewed one as soon (and be
		// judged from then on, lag.go).
		if s, ok := e.cfg.Cache.ECKSecret(target.Namespace, eck.TransportCertsPublic(target.Name)); ok {
			if bundle, err := e.ownCAs.Of(s.Data["ca.crt"], e.cfg.Now()); err == nil {
				creds.CaBundle = bundle
			}
		}
		// Only a model whose consumers take the bundle by reference shares it (sharesCA).
		if m := e.modelOnWire(creds.GetModel()); share && m != nil && m.sharesCA() {
			ref = link.ExportCAID(target.Namespace, target.Name)
			if err := e.cfg.Outbox.Publish(peer, link.ExportCAResource(ref), &peerv1.ExportCA{CaBundle: creds.GetCaBundle()}); err != nil {
				return err
			}
			wire = proto.Clone(creds).(*peerv1.Credentials)
			wire.CaBundle, wire.CaRef = nil, ref
		}
	}
	if err := e.cfg.Outbox.Publish(peer, link.Resource(link.KindCredentials, id), wire); err != nil {
		return err
	}
	e.noteCAsSent(st, creds.GetCaBundle())
	e.mu.Lock()
	st.sent, st.caRef = creds, ref
	e.mu.Unlock()
	return nil
}

// republishExportCA sends a peer the new shared CA bundle of an exported Elasticsearch: one
// update for all its links there. Links last answered with the bundle inline (before the peer
// announced the capability) get their credentials again.
func (e *Exporter) republishExportCA(peer, ns, es string) (time.Duration, error) {
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	s, ok := e.cfg.Cache.ECKSecret(ns, eck.TransportCertsPublic(es))
	if !ok {
		return 0, nil // gone with the Elasticsearch: the links' reconciles say so
	}
	bundle, err := e.ownCAs.Of(s.Data["ca.crt"], e.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("failed to read the transport CA of %s/%s: %w", ns, es, err)
	}
	ref := link.ExportCAID(ns, es)
	if err := e.cfg.Outbox.Publish(peer, link.ExportCAResource(ref), &peerv1.ExportCA{CaBundle: bundle}); err != nil {
		return 0, err
	}
	var shared []*linkState
	e.mu.Lock()
	for id, st := range e.links[peer] {
		if st.removed || st.sent == nil || st.target == nil || st.target.Namespace != ns || st.target.Name != es {
			continue
		}
		if st.caRef != ref {
			e.enqueue(item{kind: "ca", peer: peer, link: id}, trigCA)
			continue
		}
		c := proto.Clone(st.sent).(*peerv1.Credentials)
		c.CaBundle = bundle
		st.sent = c
		shared = append(shared, st)
	}
	e.mu.Unlock()
	for _, st := range shared {
		e.noteCAsSent(st, bundle)
	}
	return 0, nil
}

// republishCA sends the link's last credentials with the exported Elasticsearch's newest
// transport CA bundle, without a round trip to Elasticsearch. Anything else than the CA goes
// through the full reconcile.
func (e *Exporter) republishCA(ctx context.Context, peer string, id link.ID) (time.Duration, error) {
	e.mu.Lock()
	st, ok := e.links[peer][id]
	var sent *peerv1.Credentials
	if ok && !st.removed && st.target != nil {
		sent = st.sent
	}
	e.mu.Unlock()
	if sent == nil {
		return e.reconcileLink(ctx, peer, id)
	}
	return 0, e.publishCredentials(peer, id, st, nil)
}

// statusNeedsReconcile reports whether a link status from the peer can change what the link's
// reconcile decides: the key in effect or written, the connection, the signing subject. The
// echo of a CA update changes only the applied CA fingerprints (and the observed time), which
// OnLinkStatus records without a reconcile.
func statusNeedsReconcile(prev, next *peerv1.LinkStatus) bool {
	if prev == nil {
		return true
	}
	return prev.GetAppliedApiKeyId() != next.GetAppliedApiKeyId() || prev.GetWrittenApiKeyId() != next.GetWrittenApiKeyId() ||
		prev.GetConnected() != next.GetConnected() || prev.GetSigningSubject() != next.GetSigningSubject() ||
		prev.GetMessage() != next.GetMessage()
}
