package app

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/exporter"
	"github.com/ecklink/ecklink/agent/importer"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peers"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// router is the application side of the stream: it checks that each update's resource key
// matches its payload and hands it to the half that owns it.
type router struct {
	exp     *exporter.Exporter
	imp     *importer.Importer
	peers   *peers.Controller
	metrics *metrics.Metrics
	trust   *trustSync
	log     hclog.Logger
}

var _ peering.Handler = (*router)(nil)

func (r *router) AppliedSequences(peer string) map[string]uint64 {
	return r.trust.WithApplied(peer, r.imp.AppliedSequences(peer))
}

func (r *router) HandleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	// The halves refuse with a *peering.RefusalError, which the stream sends as the Nack and
	// logs (once, there).
	err := r.handleUpdate(ctx, peer, u)
	var ref *peering.RefusalError
	if errors.As(err, &ref) {
		r.metrics.Nack(peer, "sent", ref.Reason)
	}
	return err
}

func (r *router) handleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	if u.GetResource() == peering.ResourceTrust {
		return r.trust.HandleUpdate(ctx, peer, u)
	}
	if id, ok := link.ParseExportCAResource(u.GetResource()); ok {
		switch p := u.GetPayload().(type) {
		case *peerv1.Update_ExportCa:
			return r.imp.OnExportCA(peer, id, p.ExportCa)
		case *peerv1.Update_Removed:
			r.imp.OnExportCARemoved(peer, id)
			return nil
		}
		return peering.Refuse(peering.ReasonInvalidResource, "resource %s carries no ExportCA", u.GetResource())
	}
	if g, ok, err := link.ParseCAStatusResource(u.GetResource()); ok {
		if err != nil {
			return peering.Refuse(peering.ReasonInvalidResource, "%v", err)
		}
		switch p := u.GetPayload().(type) {
		case *peerv1.Update_CaStatus:
			return r.exp.OnCAStatus(peer, g, p.CaStatus)
		case *peerv1.Update_Removed:
			r.exp.OnCAStatusRemoved(peer, g)
			return nil
		}
		return peering.Refuse(peering.ReasonInvalidResource, "resource %s carries no CAStatus", u.GetResource())
	}
	kind, id, err := link.ParseResource(u.GetResource())
	if err != nil {
		return peering.Refuse(peering.ReasonInvalidResource, "%v", err)
	}
	match := func(l *peerv1.Link, want string) error {
		got, err := link.FromProto(l)
		if err != nil {
			return peering.Refuse("InvalidLink", "%v", err)
		}
		if kind != want || got != id {
			return peering.Refuse(peering.ReasonInvalidResource, "resource %s does not match its %s payload for link %s", u.GetResource(), want, got)
		}
		return nil
	}
	switch p := u.GetPayload().(type) {
	case *peerv1.Update_ImportRequest:
		if err := match(p.ImportRequest.GetLink(), link.KindImport); err != nil {
			return err
		}
		return r.exp.OnImport(peer, p.ImportRequest)
	case *peerv1.Update_LinkStatus:
		if err := match(p.LinkStatus.GetLink(), link.KindStatus); err != nil {
			return err
		}
		return r.exp.OnLinkStatus(peer, p.LinkStatus)
	case *peerv1.Update_Credentials:
		if err := match(p.Credentials.GetLink(), link.KindCredentials); err != nil {
			return err
		}
		return r.imp.OnCredentials(peer, u.GetSequence(), p.Credentials)
	case *peerv1.Update_Refusal:
		if err := match(p.Refusal.GetLink(), link.KindCredentials); err != nil {
			return err
		}
		return r.imp.OnRefusal(peer, u.GetSequence(), p.Refusal)
	case *peerv1.Update_Removed:
		switch kind {
		case link.KindImport:
			r.exp.OnImportRemoved(peer, id)
		case link.KindCredentials:
			r.imp.OnCredentialsRemoved(peer, id)
		}
		return nil
	default:
		return peering.Refuse(peering.ReasonUnknownMessage, "update of %s has no payload this agent knows", u.GetResource())
	}
}

func (r *router) HandleInventory(_ context.Context, peer string, resources []string) error {
	r.exp.OnInventory(peer, resources)
	r.imp.OnInventory(peer, resources)
	return nil
}

func (r *router) HandleTerminated(peer, reason string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.peers.Terminated(ctx, peer, reason)
	}()
}

func (r *router) OnAck(peer, resource string, seq uint64) {
	r.log.Trace("update acknowledged", "peer", peer, "resource", resource, "sequence", seq)
	if resource == peering.ResourceTrust {
		r.trust.OnAck(peer)
	}
}

func (r *router) OnNack(peer, resource string, seq uint64, reason, message string) {
	r.metrics.Nack(peer, "received", reason) // the stream logs the Nack
	// A peer refusing an import request on receipt (not granted, a cap reached) may send no
	// Refusal: the RemoteCluster's conditions show the Nack's reason instead.
	if kind, id, err := link.ParseResource(resource); err == nil && kind == link.KindImport && importRefusals[reason] {
		r.imp.OnImportRefused(peer, id, reason, message)
	}
}

// importRefusals are the Nack reasons of an import request that mean "not granted as it
// stands", rather than a malformed request.
var importRefusals = map[string]bool{
	v1alpha1.ReasonPeerNotGranted: true, v1alpha1.ReasonPeerNotFound: true, exporter.ReasonLinkLimitExceeded: true,
}

func (r *router) OnConnected(info peering.SessionInfo) {
	r.log.Info("peer connected", "peer", info.Peer, "dialed", info.Dialed, "peer_version", info.PeerVersion)
	r.exp.PeerConnected(info.Peer, info.Capabilities)
	r.imp.PeerConnected(info.Peer, info.Capabilities)
	r.peers.Refresh(info.Peer)
}

func (r *router) OnDisconnected(peer string, err error) {
	r.log.Info("peer disconnected", "peer", peer, "error", err)
	r.peers.Refresh(peer)
}
