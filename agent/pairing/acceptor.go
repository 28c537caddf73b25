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
	"github.com/ecklink/ecklink/internal/logging"
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
	// Kube updates the token Secrets (reads come from Tokens).
	Kube kubernetes.Interface
	// Tokens is the in-memory index of the token Secrets, started before Pair is served.
	Tokens *TokenIndex
	// CRDs creates the Peer of the joiner.
	CRDs *kube.Client
	// Self is this agent's identity, returned to the joiner.
	Self Self
	// Version is this agent's version, returned to the joiner.
	Version string
	// Metrics counts refusals by reason (optional).
	Metrics RefusalCounter
	Logger  hclog.Logger
	// Now is the clock tokens expire by (default time.Now).
	Now func() time.Time
}

// RefusalCounter counts refused pairing attempts; *metrics.Metrics implements it.
type RefusalCounter interface {
	PairingRefused(reason string)
}

// Acceptor redeems pairing tokens: it implements peering.Pairer.
type Acceptor struct {
	cfg      AcceptorConfig
	store    *tokenStore
	log      hclog.Logger
	throttle *logging.Throttle
}

var _ peering.Pairer = (*Acceptor)(nil)

const (
	// refusalLogInterval is how often a refusal of one reason is logged during a flood.
	refusalLogInterval = 30 * time.Second
	// maxLoggedError bounds logged errors that quote what a client sent.
	maxLoggedError = 512
)

// NewAcceptor checks cfg and returns an Acceptor.
func NewAcceptor(cfg AcceptorConfig) (*Acceptor, error) {
	if cfg.Namespace == "" || cfg.Kube == nil || cfg.Tokens == nil || cfg.CRDs == nil || cfg.Self == nil {
		return nil, fmt.Errorf("failed to create pairing acceptor: Namespace, Kube, Tokens, CRDs and Self are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Acceptor{
		cfg: cfg, store: &tokenStore{kube: cfg.Kube, namespace: cfg.Namespace},
		log: cfg.Logger.Named("pairing"), throttle: logging.NewThrottle(refusalLogInterval, cfg.Now),
	}, nil
}

// Pair redeems the token in req and pairs with the joiner it names. The order of the steps
// matters: everything up to the token's checks is in memory and cheap (no token open, a wrong
// id or secret: refused at once, and with the same answer, so an anonymous client learns
// nothing); the joiner's identity is parsed only for a caller who proved the secret; nothing
// about existing pairings is revealed before that; and the token is consumed (atomically)
// before the Peer is created, and released if that fails.
func (a *Acceptor) Pair(ctx context.Context, req *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	now := a.cfg.Now()
	tok, reason, err := a.redeemable(req, now)
	if err != nil {
		a.refused(reason, tok, err)
		return nil, err
	}
	joiner := req.GetIdentity()
	env := joiner.GetEnvironment()
	certs, err := ValidateIdentity(joiner, now)
	if err != nil {
		err = fmt.Errorf("%w: joiner identity: %w", peering.ErrPairingInvalid, err)
		a.refused("invalid_identity", tok, err)
		return nil, err
	}
	log := a.log.With("peer", env, "token_id", tok.state.ID)
	if _, err := a.cfg.CRDs.Peers().Get(ctx, a.cfg.Namespace, env); err == nil {
		err = fmt.Errorf("%w: environment %q is already paired with %q; unpair first (agentctl unpair %s, in %s)", peering.ErrAlreadyPaired, env, a.cfg.Self.Environment(), env, a.cfg.Self.Environment())
		a.refused("already_paired", tok, err)
		return nil, err
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err := a.store.consume(ctx, tok.secret, env, now); err != nil {
		a.refused("conflict", tok, err)
		return nil, err
	}
	peer := NewPeer(a.cfg.Namespace, env, pemutil.EncodeBundle(certs), joiner.GetEndpoints(), false, "token "+tok.state.ID)
	if _, err := a.cfg.CRDs.Peers().Create(ctx, peer); err != nil {
		if rerr := a.store.release(ctx, tok.state.ID); rerr != nil {
			log.Warn("failed to release the token after a failed pairing", "error", rerr)
		}
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("%w: environment %q was paired concurrently", peering.ErrAlreadyPaired, env)
		}
		return nil, fmt.Errorf("failed to create Peer %s: %w", env, err)
	}
	log.Info("paired by token", "peer_endpoints", len(joiner.GetEndpoints()), "peer_version", logging.Clip(joiner.GetVersion(), 64))
	return &peerv1.PairResponse{Identity: &peerv1.AgentIdentity{
		Environment: a.cfg.Self.Environment(),
		CaBundle:    a.cfg.Self.Bundle(),
		Endpoints:   a.cfg.Self.Endpoints(),
		Version:     a.cfg.Version,
	}}, nil
}

// errNoMatch answers every attempt that did not prove a token's secret, whether no token is
// open, the id is unknown or the secret wrong: an anonymous client cannot tell them apart.
var errNoMatch = fmt.Errorf("%w: no open pairing token on this agent matches this token id and secret; "+
	"check the token, or create a new one on this side (agentctl pair token --peer <environment>)", peering.ErrPairingRefused)

// redeemable returns the token req may redeem at now, or the reason (a metric label) and the
// error of the refusal. It reads only memory: the index and the request.
func (a *Acceptor) redeemable(req *peerv1.PairRequest, now time.Time) (*indexedToken, string, error) {
	if !a.cfg.Tokens.Open(now) {
		return nil, "no_open_token", errNoMatch
	}
	id := req.GetTokenId()
	if !tokenIDPattern.MatchString(id) {
		return nil, "malformed", errNoMatch
	}
	tok, ok := a.cfg.Tokens.lookup(id)
	if !ok {
		return nil, "unknown_token", errNoMatch
	}
	if !secretMatches(Secret(req.GetTokenSecret()), string(tok.secret.Data[KeySecretHash])) {
		return nil, "wrong_secret", errNoMatch
	}
	// The caller holds the secret: from here on, refusals say why.
	st := tok.state
	refuse := func(reason, format string, args ...any) (*indexedToken, string, error) {
		return tok, reason, fmt.Errorf("%w: token %s %s", peering.ErrPairingRefused, id, fmt.Sprintf(format, args...))
	}
	switch status := tok.status(now); status {
	case TokenUsed:
		return refuse(status, "was already used (by environment %q at %s); a token works once, create a new one",
			st.UsedBy, st.UsedAt.UTC().Format(time.RFC3339))
	case TokenRevoked:
		return refuse(status, "was revoked at %s (%s); create a new one", st.RevokedAt.UTC().Format(time.RFC3339), st.RevokedReason)
	case TokenUnbound:
		return refuse(status, "is bound to no environment (made by agentctl 0.1.0?); create a new one with agentctl pair token --peer <environment>")
	case TokenSuperseded:
		return refuse(status, "was replaced by newer token %s for environment %q; use that one", tok.supersededBy, st.Peer)
	case TokenExpired:
		return refuse(status, "expired at %s (this agent accepts a token for at most %s after its creation); create a new one",
			st.Expires.UTC().Format(time.RFC3339), a.cfg.Tokens.maxTTL)
	}
	env := req.GetIdentity().GetEnvironment()
	if err := identity.ValidateEnvironment(env); err != nil {
		return tok, "invalid_identity", fmt.Errorf("%w: joiner identity: %w", peering.ErrPairingInvalid, err)
	}
	if env == a.cfg.Self.Environment() {
		return tok, "invalid_identity", fmt.Errorf("%w: the joiner has this agent's own environment name %q", peering.ErrPairingInvalid, env)
	}
	if env != st.Peer {
		return refuse("wrong_peer", "is for environment %q, not %q: join from that environment, or create a token for %s (agentctl pair token --peer %s)",
			st.Peer, env, env, env)
	}
	return tok, "", nil
}

// refused counts a refusal and logs it, at most once per interval and reason with the number of
// like refusals held back since, so that a flood of attempts cannot fill the log. Only what the
// agent validated reaches the line: the token id once the caller proved its secret, never what an
// anonymous client sent.
func (a *Acceptor) refused(reason string, tok *indexedToken, err error) {
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.PairingRefused(reason)
	}
	ok, held := a.throttle.Allow(reason)
	if !ok {
		return
	}
	args := []any{"reason", reason, "suppressed", held}
	if tok != nil {
		args = append(args, "token_id", tok.state.ID, "error", logging.Clip(err.Error(), maxLoggedError))
	}
	a.log.Warn("pairing refused", args...)
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
