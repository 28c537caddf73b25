package importer

import (
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/internal/peertext"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Bounds on peer text received by the local side.
const (
	maxRefusalMessage = 1024
	maxFallbackText   = 512
	maxProxyAddress   = 260 // a DNS name, ':' and a port
)

var (
	// refusalReason is what a refusal's reason must look like: it becomes a condition reason.
	refusalReason = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,63}$`)
	serverName    = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$`)
)

// OnCredentials validates credentials a peer sent for one of our links and queues them for the
// local Elasticsearch. Invalid material is refused whole; the last good state stays.
func (im *Importer) OnCredentials(peer string, sequence uint64, c *peerv1.Credentials) error {
	id, err := im.requested(peer, c.GetLink())
	if err != nil {
		return err
	}
	if err := validateText(c); err != nil {
		return err
	}
	if ref := im.modelNotAllowed(peer, id, c); ref != nil {
		// The link's status says it; nothing of the credentials is kept or applied.
		im.store(id, &received{peer: peer, sequence: sequence, refusal: &peerv1.Refusal{Link: c.GetLink(), Reason: ref.Reason, Message: ref.Message}, local: true, at: im.cfg.Now()})
		return ref
	}
	c, resolved, err := im.resolveCARef(peer, c) // exportca.go
	if err != nil {
		return err
	}
	if err := im.validate(c); err != nil {
		return err
	}
	r := &received{peer: peer, sequence: sequence, creds: c, at: im.cfg.Now()}
	if !resolved {
		im.holdForCA(id, r)
		return nil
	}
	im.store(id, r)
	return nil
}

// OnRefusal records that the peer will not grant a link, and why.
func (im *Importer) OnRefusal(peer string, sequence uint64, r *peerv1.Refusal) error {
	id, err := im.requested(peer, r.GetLink())
	if err != nil {
		return err
	}
	if len(r.GetMessage()) > maxRefusalMessage || !refusalReason.MatchString(r.GetReason()) {
		return &peering.RefusalError{Reason: "InvalidRefusal", Message: fmt.Sprintf("refusal reason must be 1-64 letters and digits starting with a letter, and its message at most %d bytes", maxRefusalMessage)}
	}
	// The reason and message become the RemoteCluster's conditions: the message is cleaned
	// of control characters and clipped once, here.
	r = &peerv1.Refusal{Link: r.GetLink(), Reason: r.GetReason(), Message: peertext.Clean(r.GetMessage(), peertext.Status)}
	im.store(id, &received{peer: peer, sequence: sequence, refusal: r, at: im.cfg.Now()})
	return nil
}

// OnImportRefused records a Nack of one of our import requests whose reason means that the peer
// will not grant the link as it stands (a peer refusing on receipt keeps nothing and may send
// no Refusal): the RemoteCluster's conditions say so, as for a Refusal. The peer checks the
// request again when the stream reopens.
func (im *Importer) OnImportRefused(peer string, id link.ID, reason, message string) {
	if _, err := im.requested(peer, id.Proto()); err != nil || !refusalReason.MatchString(reason) {
		return
	}
	im.mu.Lock()
	if r := im.answers[id]; r != nil && r.peer == peer && r.creds != nil {
		im.mu.Unlock()
		return // credentials stay in effect until the peer withdraws them
	}
	im.mu.Unlock()
	im.store(id, &received{peer: peer, refusal: &peerv1.Refusal{Link: id.Proto(), Reason: reason, Message: peertext.Clean(message, peertext.Status)}, at: im.cfg.Now()})
}

// OnCredentialsRemoved drops what a peer sent for a link.
func (im *Importer) OnCredentialsRemoved(peer string, id link.ID) {
	im.mu.Lock()
	if r := im.shared.waiting[id]; r != nil && r.peer == peer {
		delete(im.shared.waiting, id)
	}
	if r, ok := im.answers[id]; ok && r.peer == peer {
		im.answers[id] = &received{peer: peer, removed: true, at: im.cfg.Now()}
	}
	im.mu.Unlock()
	im.enqueue(types.NamespacedName{Namespace: id.Namespace, Name: id.Elasticsearch}, trigRemoved)
}

// OnInventory keeps every answer, listed or not. A link missing from a peer's inventory is not
// withdrawn: a peer that restarted holds nothing until it answered the import requests this
// session resends, and it answers each of them (credentials or a refusal), while a withdrawal is
// an explicit Removed. Dropping unlisted answers here would remove the links' settings from
// Elasticsearch at every restart of the peer.
func (im *Importer) OnInventory(peer string, resources []string) {
	listed := map[link.ID]bool{}
	for _, r := range resources {
		if kind, id, err := link.ParseResource(r); err == nil && kind == link.KindCredentials {
			listed[id] = true
		}
	}
	im.mu.Lock()
	unlisted := 0
	for id, r := range im.answers {
		if r.peer == peer && !listed[id] && !r.removed {
			unlisted++
		}
	}
	im.mu.Unlock()
	if unlisted > 0 {
		im.log.Debug("peer does not hold credentials for some links yet; keeping what is applied", "peer", peer, "links", unlisted)
	}
}

// PeerGone drops everything a peer sent: its links are removed from the local Elasticsearch.
func (im *Importer) PeerGone(peer string) {
	im.mu.Lock()
	delete(im.shared.bundles, peer)
	for id, r := range im.shared.waiting {
		if r.peer == peer {
			delete(im.shared.waiting, id)
		}
	}
	var gone []link.ID
	for id, r := range im.answers {
		if r.peer == peer && !r.removed {
			gone = append(gone, id)
		}
	}
	for _, rc := range im.cfg.Cache.RemoteClustersShared() {
		if rc.Spec.Peer == peer {
			id := link.ID{Namespace: rc.Namespace, Elasticsearch: rc.Spec.ElasticsearchRef.Name, Alias: rc.Spec.Alias}
			im.answers[id] = &received{peer: peer, removed: true, at: im.cfg.Now()}
		}
	}
	for id, p := range im.published {
		if p == peer {
			delete(im.published, id)
		}
	}
	im.mu.Unlock()
	for _, id := range gone {
		im.OnCredentialsRemoved(peer, id)
	}
	im.enqueueAll(trigPeerGone)
}

// AppliedSequences returns, per credentials resource from peer, the sequence applied last, as
// recorded in the RemoteClusters' status; the peer continues above it, and an older sequence is
// refused as a rollback. For a link whose credentials this process has not received yet (the
// agent restarted), it returns one less: the peer then sends the credentials last applied again,
// without which the link's conditions would say it waits for the peer until the peer next
// changed something.
func (im *Importer) AppliedSequences(peer string) map[string]uint64 {
	out := map[string]uint64{}
	for _, rc := range im.cfg.Cache.RemoteClustersShared() {
		if rc.Spec.Peer != peer || rc.Status.AppliedSequence <= 0 {
			continue
		}
		id := link.ID{Namespace: rc.Namespace, Elasticsearch: rc.Spec.ElasticsearchRef.Name, Alias: rc.Spec.Alias}
		seq := uint64(rc.Status.AppliedSequence)
		im.mu.Lock()
		if r := im.answers[id]; r == nil || r.peer != peer || r.creds == nil {
			seq--
		}
		im.mu.Unlock()
		if seq > 0 {
			out[link.Resource(link.KindCredentials, id)] = seq
		}
	}
	return out
}

func (im *Importer) store(id link.ID, r *received) {
	im.storeAll([]link.ID{id}, []*received{r})
}

// storeAll stores the answers of several links, then queues each Elasticsearch once: a CA-only
// change of many links of one Elasticsearch (a shared bundle renewed) is then one pass of the
// CA path and one ConfigMap write, not a pass that starts with the first link stored and a
// second one for the rest.
func (im *Importer) storeAll(ids []link.ID, rs []*received) {
	caKeys, fullKeys := map[types.NamespacedName]bool{}, map[types.NamespacedName]bool{}
	im.mu.Lock()
	for i, id := range ids {
		key := types.NamespacedName{Namespace: id.Namespace, Name: id.Elasticsearch}
		if caOnlyChange(im.answers[id], rs[i]) {
			caKeys[key] = true
		} else {
			fullKeys[key] = true
		}
		im.answers[id] = rs[i]
		delete(im.shared.waiting, id)
	}
	im.mu.Unlock()
	for key := range caKeys {
		if !fullKeys[key] {
			im.ca.queue.Add(key) // cafast.go
		}
	}
	for key := range fullKeys {
		im.enqueue(key, trigAnswer)
	}
}

// requested checks that the link is one we asked this peer for.
func (im *Importer) requested(peer string, l *peerv1.Link) (link.ID, error) {
	id, err := link.FromProto(l)
	if err != nil {
		return id, &peering.RefusalError{Reason: "InvalidLink", Message: err.Error()}
	}
	for _, rc := range im.cfg.Cache.RemoteClustersSharedOf(id.Namespace, id.Elasticsearch) {
		if rc.Spec.Alias == id.Alias && rc.Spec.Peer == peer {
			return id, nil
		}
	}
	return id, &peering.RefusalError{Reason: "NotRequested", Message: fmt.Sprintf("no RemoteCluster requests link %s from environment %s", id, peer)}
}

// validateText bounds the free-text fields of credentials, which end up in conditions and logs.
func validateText(c *peerv1.Credentials) error {
	if v := c.GetElasticsearchVersion(); !link.ValidVersion(v) {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: fmt.Sprintf("elasticsearch_version %q: want a version such as 9.3.2, at most %d characters", peertext.Clean(v, link.MaxVersionLen), link.MaxVersionLen)}
	}
	if f := c.GetStrongIdentityFallback(); len(f) > maxFallbackText || !peertext.Printable(f) {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: fmt.Sprintf("strong_identity_fallback: want printable text of at most %d bytes", maxFallbackText)}
	}
	if _, err := license.FromProto(c.GetElasticsearchLicense()); err != nil {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: "elasticsearch_license " + err.Error()}
	}
	if err := v1alpha1.ValidRotationRequest("key_rotation_request", c.GetKeyRotationRequest()); err != nil {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: err.Error()}
	}
	if n := len(c.GetProxyAddress()); n > maxProxyAddress {
		return &peering.RefusalError{Reason: "InvalidAddress", Message: fmt.Sprintf("proxy_address is %d bytes, at most %d allowed", n, maxProxyAddress)}
	}
	if err := link.CheckFingerprints("signing_trusted_fingerprints", c.GetSigningTrustedFingerprints()); err != nil {
		return &peering.RefusalError{Reason: "InvalidCredentials", Message: err.Error()}
	}
	return nil
}
