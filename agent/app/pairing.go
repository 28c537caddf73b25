package app

import (
	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/pairing"
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
	if a.trust, err = newTrustSync(trustConfig{
		Identity: a.identity, Outbox: a.manager, Streams: a.manager, Peers: a.cache, CRDs: crds, Namespace: cfg.Namespace,
		Recorder: a.recorder, Busy: a.joiner.InProgress, Logger: log,
	}); err != nil {
		return err
	}
	return a.cache.OnPeer(func(_, _ any) { a.trust.PeersChanged() })
}
