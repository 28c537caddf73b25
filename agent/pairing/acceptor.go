package pairing

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Self is this agent's identity as pairing needs it; *identity.Identity implements it.
type Self interface {
	Environment() string
	Bundle() []byte
	Endpoints() []string
}

// AcceptorConfig configures an Acceptor.
type AcceptorConfig struct {
	// Namespace is the agent's namespace: tokens and Peers live there.
	Namespace string
	// Kube reads and updates the token Secrets.
	Kube kubernetes.Interface
	// CRDs creates the Peer of the joiner.
	CRDs *kube.Client
	// Self is this agent's identity, returned to the joiner.
	Self Self
	// Version is this agent's version, returned to the joiner.
	Version string
	Logger  hclog.Logger
	// Now is the clock tokens expire by (default time.Now).
	Now func() time.Time
}

// Acceptor redeems pairing tokens: it implements peering.Pairer.
type Acceptor struct {
	cfg   AcceptorConfig
	store *tokenStore
	log   hclog.Logger
}

var _ peering.Pairer = (*Acceptor)(nil)

// NewAcceptor checks cfg and returns an Acceptor.
func NewAcceptor(cfg AcceptorConfig) (*Acceptor, error) {
	if cfg.Namespace == "" || cfg.Kube == nil || cfg.CRDs == nil || cfg.Self == nil {
		return nil, fmt.Errorf("failed to create pairing acceptor: Namespace, Kube, CRDs and Self are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Acceptor{cfg: cfg, store: &tokenStore{kube: cfg.Kube, namespace: cfg.Namespace}, log: cfg.Logger.Named("pairing")}, nil
}

// Pair redeems the token in req and pairs with the joiner it names. The order of the steps
// matters: nothing about existing pairings is revealed before the token checks out, and the
// token is consumed (atomically) before the Peer is created, and released if that fails.
func (a *Acceptor) Pair(ctx context.Context, req *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	now := a.cfg.Now()
	joiner := req.GetIdentity()
	certs, err := ValidateIdentity(joiner, now)
	if err != nil {
		return nil, fmt.Errorf("%w: joiner identity: %w", peering.ErrPairingInvalid, err)
	}
	env := joiner.GetEnvironment()
	if env == a.cfg.Self.Environment() {
		return nil, fmt.Errorf("%w: the joiner has this agent's own environment name %q", peering.ErrPairingInvalid, env)
	}
	log := a.log.With("peer", env, "token_id", req.GetTokenId())
	sec, err := a.store.check(ctx, req.GetTokenId(), Secret(req.GetTokenSecret()), now)
	if err != nil {
		log.Warn("pairing refused", "error", err)
		return nil, err
	}
	if _, err := a.cfg.CRDs.Peers().Get(ctx, a.cfg.Namespace, env); err == nil {
		log.Warn("pairing refused: already paired")
		return nil, fmt.Errorf("%w: environment %q is already paired with %q; unpair first (agentctl unpair %s, in %s)", peering.ErrAlreadyPaired, env, a.cfg.Self.Environment(), env, a.cfg.Self.Environment())
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err := a.store.consume(ctx, sec, env, now); err != nil {
		return nil, err
	}
	peer := NewPeer(a.cfg.Namespace, env, pemutil.EncodeBundle(certs), joiner.GetEndpoints(), false, "token "+req.GetTokenId())
	if _, err := a.cfg.CRDs.Peers().Create(ctx, peer); err != nil {
		if rerr := a.store.release(ctx, req.GetTokenId()); rerr != nil {
			log.Warn("failed to release the token after a failed pairing", "error", rerr)
		}
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("%w: environment %q was paired concurrently", peering.ErrAlreadyPaired, env)
		}
		return nil, fmt.Errorf("failed to create Peer %s: %w", env, err)
	}
	log.Info("paired by token", "peer_endpoints", len(joiner.GetEndpoints()), "peer_version", joiner.GetVersion())
	return &peerv1.PairResponse{Identity: &peerv1.AgentIdentity{
		Environment: a.cfg.Self.Environment(),
		CaBundle:    a.cfg.Self.Bundle(),
		Endpoints:   a.cfg.Self.Endpoints(),
		Version:     a.cfg.Version,
	}}, nil
}

// ValidateIdentity checks an agent identity received from the other side of a pairing and
// returns its CA certificates: a DNS-label environment, a bundle of CAs valid at now, valid
// endpoints and a bounded version.
func ValidateIdentity(id *peerv1.AgentIdentity, now time.Time) ([]*x509.Certificate, error) {
	if id == nil {
		return nil, fmt.Errorf("missing")
	}
	if err := identity.ValidateEnvironment(id.GetEnvironment()); err != nil {
		return nil, err
	}
	certs, err := pemutil.ValidateCABundle(id.GetCaBundle(), now, PeerLimits)
	if err != nil {
		return nil, fmt.Errorf("caBundle: %w", err)
	}
	if n := len(id.GetEndpoints()); n > maxEndpoints {
		return nil, fmt.Errorf("endpoints: at most %d allowed, got %d", maxEndpoints, n)
	}
	for i, ep := range id.GetEndpoints() {
		if err := ValidateEndpoint(ep); err != nil {
			return nil, fmt.Errorf("endpoints[%d]: %w", i, err)
		}
	}
	if len(id.GetVersion()) > 64 {
		return nil, fmt.Errorf("version: at most 64 characters")
	}
	return certs, nil
}
