package importer

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Shared CA bundles (peer capability "export-ca"). A peer that exports one Elasticsearch to many
// links sends its transport CA bundle once, as resource exportca/<id>, and credentials that name
// it in ca_ref; a renewed CA is one ExportCA update, which the importer turns into a CA-only
// change of every link naming it (cafast.go). Credentials are kept with the bundle resolved, so
// everything downstream reads ca_bundle as before. Credentials that name a bundle not received
// yet (the stream resends resources in key order after a reconnect, and credentials sort first)
// wait for it, one per link at most.

// maxExportCAsPerPeer bounds the shared bundles held per peer: one per exported Elasticsearch
// a link of this agent imports, far below this.
const maxExportCAsPerPeer = 256

// exportCAs are the shared bundles received, per peer and id, and the credentials waiting for one.
type exportCAs struct {
	bundles map[string]map[string][]byte
	waiting map[link.ID]*received
}

// OnExportCA validates a shared CA bundle from a peer and applies it to every link naming it.
func (im *Importer) OnExportCA(peer, id string, ca *peerv1.ExportCA) error {
	if !link.ValidExportCAID(id) {
		return &peering.RefusalError{Reason: "InvalidResource", Message: "exportca id: want 16 to 64 lower-case hex digits"}
	}
	bundle := ca.GetCaBundle()
	if _, err := pemutil.ValidateCABundle(bundle, im.cfg.Now(), pemutil.DefaultLimits); err != nil {
		return &peering.RefusalError{Reason: "InvalidCA", Message: err.Error()}
	}
	im.mu.Lock()
	if im.shared.bundles == nil {
		im.shared.bundles = map[string]map[string][]byte{}
	}
	held := im.shared.bundles[peer]
	if _, known := held[id]; !known && len(held) >= maxExportCAsPerPeer {
		im.mu.Unlock()
		return &peering.RefusalError{Reason: "TooManyResources", Message: fmt.Sprintf("more than %d shared CA bundles", maxExportCAsPerPeer)}
	}
	if held == nil {
		held = map[string][]byte{}
		im.shared.bundles[peer] = held
	}
	held[id] = bundle
	var next []*received
	var ids []link.ID
	for lid, r := range im.answers {
		if r.peer == peer && !r.removed && r.creds.GetCaRef() == id && !bytes.Equal(r.creds.GetCaBundle(), bundle) {
			next, ids = append(next, withCA(r, bundle)), append(ids, lid)
		}
	}
	for lid, r := range im.shared.waiting {
		if r.peer == peer && r.creds.GetCaRef() == id {
			next, ids = append(next, withCA(r, bundle)), append(ids, lid)
			delete(im.shared.waiting, lid)
		}
	}
	im.mu.Unlock()
	im.storeAll(ids, next)
	return nil
}

// OnExportCARemoved drops a shared bundle; the links that named it keep the bundle they hold.
func (im *Importer) OnExportCARemoved(peer, id string) {
	im.mu.Lock()
	delete(im.shared.bundles[peer], id)
	im.mu.Unlock()
}

// withCA is a copy of r whose credentials carry bundle.
func withCA(r *received, bundle []byte) *received {
	c := proto.Clone(r.creds).(*peerv1.Credentials)
	c.CaBundle = bundle
	out := *r
	out.creds = c
	return &out
}

// resolveCARef fills in the bundle of credentials that name a shared one. It returns false when
// the bundle has not arrived: the credentials then wait for it (holdForCA).
func (im *Importer) resolveCARef(peer string, c *peerv1.Credentials) (*peerv1.Credentials, bool, error) {
	ref := c.GetCaRef()
	if ref == "" {
		return c, true, nil
	}
	switch {
	case !link.ValidExportCAID(ref):
		return nil, false, &peering.RefusalError{Reason: "InvalidCredentials", Message: "ca_ref: want 16 to 64 lower-case hex digits"}
	case len(c.GetCaBundle()) > 0:
		return nil, false, &peering.RefusalError{Reason: "InvalidCredentials", Message: "ca_ref and ca_bundle are exclusive"}
	case !sharesCA(c.GetModel()):
		return nil, false, &peering.RefusalError{Reason: "InvalidCredentials", Message: "ca_ref is for the API-key model only"}
	}
	im.mu.Lock()
	bundle, ok := im.shared.bundles[peer][ref]
	im.mu.Unlock()
	if !ok {
		return c, false, nil
	}
	c = proto.Clone(c).(*peerv1.Credentials)
	c.CaBundle = bundle
	return c, true, nil
}

// holdForCA keeps credentials until the shared bundle they name arrives (one per link, the
// newest).
func (im *Importer) holdForCA(id link.ID, r *received) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.shared.waiting == nil {
		im.shared.waiting = map[link.ID]*received{}
	}
	im.shared.waiting[id] = r
	im.log.Debug("credentials wait for their shared CA bundle", "link", id.String(), "peer", r.peer)
}
