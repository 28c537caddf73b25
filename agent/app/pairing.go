package app

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peerhealth"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/protocol"
)

// newPairing builds the token joiner and the trust exchange, which holds CA promotions back
// while a join is under way.
func (a *Agent) newPairing(cfg config.Config, kc kubernetes.Interface, crds *kube.Client, log hclog.Logger, version string) error {
	var err error
	if a.joiner, err = pairing.NewJoiner(pairing.JoinerConfig{
		Namespace: cfg.Namespace, Kube: kc, CRDs: crds, Self: a.identity, Version: version, Logger: log,
	}); err != nil {
		return err
	}
	if a.trust, err = protocol.NewTrustSync(protocol.TrustConfig{
		Identity: a.identity, Outbox: a.manager, Streams: a.manager, Peers: a.cache, CRDs: crds, Store: a.peerTrust,
		Endpoints: cfg.AdvertiseEndpoints, Namespace: cfg.Namespace, Recorder: a.recorder, Busy: a.joiner.InProgress, Logger: log,
	}); err != nil {
		return err
	}
	if err := a.cache.OnPeer(func(_, _ any) { a.trust.PeersChanged() }); err != nil {
		return err
	}
	// RemoteClusters and ClusterExports follow their peers' streams (PeerConnected).
	return a.cache.OnPeer(peerhealth.OnStateChange(func(peer string) {
		a.importer.PeerStateChanged(peer)
		a.exporter.PeerStateChanged(peer)
	}))
}

// newPort builds the peer port: Sync for paired agents, Pair for joining ones, redeemed from the
// in-memory token index (watchKube: its informer waits out an unreachable API server).
func (a *Agent) newPort(cfg config.Config, kc, watchKube kubernetes.Interface, crds *kube.Client, log hclog.Logger, version string) error {
	var err error
	if a.tokens, err = pairing.NewTokenIndex(watchKube, cfg.Namespace, cfg.Pairing.TokenMaxTTL.Duration); err != nil {
		return err
	}
	acceptor, err := pairing.NewAcceptor(pairing.AcceptorConfig{
		Namespace: cfg.Namespace, Kube: kc, Tokens: a.tokens, CRDs: crds, Self: a.identity, Version: version, Metrics: a.metrics, Logger: log,
	})
	if err != nil {
		return err
	}
	// Sync authenticates every stream against the current trust.
	server, err := peering.NewServer(peering.ServerConfig{Manager: a.manager, Pairer: acceptor,
		Authenticate: func(ctx context.Context) (string, error) { return a.identity.AuthenticatePeer(ctx, a.peers) }})
	if err != nil {
		return err
	}
	a.port, err = peering.NewPort(peering.PortConfig{
		TLS: a.identity.ServerTLSConfigWithPairing(a.peers), Server: server, Options: a.standbyGate(), Metrics: a.metrics, Logger: log,
	})
	return err
}
