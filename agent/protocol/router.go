package protocol

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/exporter"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Exporter is the remote half as the Router calls it: what peers send about this agent's exports.
type Exporter interface {
	OnImport(peer string, req *peerv1.ImportRequest) error
	OnImportRemoved(peer string, id link.ID)
	OnLinkStatus(peer string, s *peerv1.LinkStatus) error
	OnCAStatus(peer string, g link.CAGroup, s *peerv1.CAStatus) error
	OnCAStatusRemoved(peer string, g link.CAGroup)
	OnInventory(peer string, resources []string)
	PeerConnected(peer string, capabilities []string)
}

// Importer is the local half as the Router calls it: what peers send for this agent's imports.
type Importer interface {
	AppliedSequences(peer string) map[string]uint64
	OnCredentials(peer string, sequence uint64, c *peerv1.Credentials) error
	OnRefusal(peer string, sequence uint64, r *peerv1.Refusal) error
	OnCredentialsRemoved(peer string, id link.ID)
	OnImportRefused(peer string, id link.ID, reason, message string)
	OnExportCA(peer, id string, ca *peerv1.ExportCA) error
	OnExportCARemoved(peer, id string)
	OnInventory(peer string, resources []string)
	PeerConnected(peer string, capabilities []string)
}

// Peers is the peer controller as the Router calls it.
type Peers interface {
	// Refresh queues the status of peer (its stream opened or closed).
	Refresh(peer string)
	// Terminated tears down the peering that peer ended.
	Terminated(ctx context.Context, peer, reason string)
}

// RouterConfig configures a Router; every field is required but Logger.
type RouterConfig struct {
	Exporter Exporter
	Importer Importer
	Peers    Peers
	Trust    *TrustSync
	Metrics  *metrics.Metrics
	Logger   hclog.Logger
}

// Router is the application side of the stream: it checks that each update's resource key
// matches its payload and hands it to the part that owns it.
type Router struct {
	exp     Exporter
	imp     Importer
	peers   Peers
	metrics *metrics.Metrics
	trust   *TrustSync
	log     hclog.Logger
}

var _ peering.Handler = (*Router)(nil)

// NewRouter returns the Router of cfg.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Exporter == nil || cfg.Importer == nil || cfg.Peers == nil || cfg.Trust == nil || cfg.Metrics == nil {
		return nil, fmt.Errorf("failed to create router: Exporter, Importer, Peers, Trust and Metrics are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Router{exp: cfg.Exporter, imp: cfg.Importer, peers: cfg.Peers, metrics: cfg.Metrics, trust: cfg.Trust, log: cfg.Logger.Named("stream")}, nil
}

// AppliedSequences adds the trust bundle's sequence to the importer's (peering.Handler).
func (r *Router) AppliedSequences(peer string) map[string]uint64 {
	return r.trust.WithApplied(peer, r.imp.AppliedSequences(peer))
}

// HandleUpdate routes an update to the part that owns its resource key and counts its refusal.
func (r *Router) HandleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	// The halves refuse with a *peering.RefusalError, which the stream sends as the Nack and
	// logs (once, there).
	err := r.handleUpdate(ctx, peer, u)
	var ref *peering.RefusalError
	if errors.As(err, &ref) {
		r.metrics.Nack(peer, "sent", ref.Reason)
	}
	return err
}

func (r *Router) handleUpdate(ctx context.Context, peer string, u *peerv1.Update) error {
	if u.GetResource() == ResourceTrust {
		return r.trust.HandleUpdate(ctx, peer, u)
	}
	if id, ok := link.ParseExportCAResource(u.GetResource()); ok {
		return payloadOrRemoved(u, "ExportCA", func(p *peerv1.Update_ExportCa) error {
			return r.imp.OnExportCA(peer, id, p.ExportCa)
		}, func() { r.imp.OnExportCARemoved(peer, id) })
	}
	if g, ok, err := link.ParseCAStatusResource(u.GetResource()); ok {
		if err != nil {
			return peering.Refuse(peering.ReasonInvalidResource, "%v", err)
		}
		return payloadOrRemoved(u, "CAStatus", func(p *peerv1.Update_CaStatus) error {
			return r.exp.OnCAStatus(peer, g, p.CaStatus)
		}, func() { r.exp.OnCAStatusRemoved(peer, g) })
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

// payloadOrRemoved hands u to on when it carries a P payload, to removed when it carries
// Removed, and refuses it, naming the payload what, when it carries anything else.
func payloadOrRemoved[P any](u *peerv1.Update, what string, on func(P) error, removed func()) error {
	switch p := u.GetPayload().(type) {
	case P:
		return on(p)
	case *peerv1.Update_Removed:
		removed()
		return nil
	}
	return peering.Refuse(peering.ReasonInvalidResource, "resource %s carries no %s", u.GetResource(), what)
}

// HandleInventory gives a peer's inventory to both halves.
func (r *Router) HandleInventory(_ context.Context, peer string, resources []string) error {
	r.exp.OnInventory(peer, resources)
	r.imp.OnInventory(peer, resources)
	return nil
}

// HandleTerminated tears the peering down, off the session loop.
func (r *Router) HandleTerminated(peer, reason string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.peers.Terminated(ctx, peer, reason)
	}()
}

// OnAck wakes the trust exchange when the peer acknowledged the bundle.
func (r *Router) OnAck(peer, resource string, seq uint64) {
	r.log.Trace("update acknowledged", "peer", peer, "resource", resource, "sequence", seq)
	if resource == ResourceTrust {
		r.trust.OnAck(peer)
	}
}

// OnNack counts a refusal received and reports a refused import request to the importer.
func (r *Router) OnNack(peer, resource string, seq uint64, reason, message string) {
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

// OnConnected tells both halves and the peer controller.
func (r *Router) OnConnected(info peering.SessionInfo) {
	r.log.Info("peer connected", "peer", info.Peer, "dialed", info.Dialed, "peer_version", info.PeerVersion)
	r.exp.PeerConnected(info.Peer, info.Capabilities)
	r.imp.PeerConnected(info.Peer, info.Capabilities)
	r.peers.Refresh(info.Peer)
}

// OnDisconnected tells the peer controller.
func (r *Router) OnDisconnected(peer string, err error) {
	r.log.Info("peer disconnected", "peer", peer, "error", err)
	r.peers.Refresh(peer)
}
