package ctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/pairing"
)

func newTokenCommand(g *globals) *cobra.Command {
	var (
		ttl       time.Duration
		peer      string
		endpoints []string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "token --context A --peer B [--ttl 15m]",
		Short: "Create a one-time pairing token for environment B to join environment A",
		Long: `Creates a token that lets environment --peer pair with the agent of --context by itself,
with "agentctl pair join" there: only that environment needs to reach this agent's endpoint.
The token carries this agent's endpoints (or --endpoint), the SHA-256 pins of its agent CA
keys, its environment, a token id and secret, and the expiry. Only a hash of the secret is
stored, in Secret ecklink-pairing-token-<id> of the agent's namespace, with the name of the
environment the token is for: the agent refuses a joiner of another name. A token works once;
a new token for the same environment revokes its unused predecessor.

The agent redeems a token at most its pairing.tokenMaxTTL (default 1h, at most 168h) after it
was created, whatever --ttl says. "pair token list" shows the tokens, "pair token revoke ID"
revokes one.

The token is printed alone on stdout, so that it can be captured; treat it as a secret.
--dry-run prints the Secret instead and creates nothing.`,
		Example: `  TOKEN=$(agentctl pair token --context east --peer west --ttl 10m)
  agentctl pair join "$TOKEN" --context west`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl <= 0 || ttl > pairing.MaxTTL {
				return usageErr(fmt.Errorf("--ttl %s: want a duration up to %s", ttl, pairing.MaxTTL))
			}
			if err := identity.ValidateEnvironment(peer); err != nil {
				return usageErr(fmt.Errorf("--peer: the environment that will join, as its agent names itself: %w", err))
			}
			for _, ep := range endpoints {
				if err := pairing.ValidateEndpoint(ep); err != nil {
					return usageErr(fmt.Errorf("--endpoint %w", err))
				}
			}
			return g.pairToken(cmd.Context(), ttl, peer, endpoints, dryRun)
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", pairing.DefaultTTL, "how long the token is valid (the agent caps it at its pairing.tokenMaxTTL, default 1h)")
	cmd.Flags().StringVar(&peer, "peer", "", "environment name of the agent that will join with the token (required): the agent refuses any other")
	cmd.Flags().StringSliceVar(&endpoints, "endpoint", nil, "host:port the joiner dials, instead of the agent's advertised endpoints (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the token's Secret instead of creating it")
	cmd.AddCommand(newTokenListCommand(g), newTokenRevokeCommand(g))
	return cmd
}

// tokenResult is the output of pair token.
type tokenResult struct {
	Token       string    `json:"token"`
	ID          string    `json:"id"`
	Environment string    `json:"environment"`
	Peer        string    `json:"peer"`
	Endpoints   []string  `json:"endpoints"`
	Expires     time.Time `json:"expires"`
	Secret      string    `json:"secretName"`
	// Revoked are the unused tokens for the same peer that this one replaced.
	Revoked []string `json:"revoked,omitempty"`
}

func (g *globals) pairToken(ctx context.Context, ttl time.Duration, peer string, endpoints []string, dryRun bool) error {
	a, err := g.local()
	if err != nil {
		return err
	}
	id, err := pairing.ReadIdentity(ctx, a.kube, a.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", a.label(), err)
	}
	if peer == id.Environment {
		return usageErr(fmt.Errorf("--peer %s is the environment of --context itself: name the environment that will join", peer))
	}
	if len(endpoints) == 0 {
		endpoints = id.Endpoints
	}
	if len(endpoints) == 0 {
		return fmt.Errorf("the agent of environment %s advertises no endpoint for the joiner to dial: set --advertise-endpoint on the agent, or give --endpoint host:port", id.Environment)
	}
	t, err := pairing.NewToken(id.Environment, endpoints, id.Pins(), g.opts.Now().Add(ttl))
	if err != nil {
		return err
	}
	sec := pairing.TokenSecret(a.namespace, t, peer)
	if dryRun {
		return g.printObjects(sec)
	}
	created, err := a.kube.CoreV1().Secrets(a.namespace).Create(ctx, sec, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to store the token in %s: %w", a.label(), err)
	}
	revoked := g.tidyTokens(ctx, a, created)
	enc, err := t.Encode()
	if err != nil {
		return err
	}
	res := tokenResult{Token: enc, ID: t.ID, Environment: t.Environment, Peer: peer, Endpoints: t.Endpoints, Expires: t.Expires, Secret: sec.Name, Revoked: revoked}
	return g.print(res, func(w io.Writer) error {
		fmt.Fprintln(w, enc)
		g.progress("Token %s for environment %s to join %s, valid until %s (%s); it works once.\nJoin from %s with:\n  agentctl pair join <token> --context <context of %s>",
			t.ID, peer, t.Environment, t.Expires.Format(time.RFC3339), ttl, peer, peer)
		if agentCap := config.Default().Pairing.TokenMaxTTL.Duration; ttl > agentCap {
			g.progress("note: an agent redeems a token at most its pairing.tokenMaxTTL after creation (default %s); raise it on the agent for a token valid %s", agentCap, ttl)
		}
		return nil
	})
}

// tidyTokens runs after a new token was created: it marks revoked the unused tokens for the same
// peer (the agent refuses them anyway, as only the newest unused token of a peer works; the mark
// makes "pair token list" say so) and returns their ids, and it deletes the Secrets of tokens
// that expired more than tokenRetention ago (they hold no secret, only a hash and a record).
// Failures are only reported: the new token works regardless.
func (g *globals) tidyTokens(ctx context.Context, e *env, created *corev1.Secret) []string {
	secrets := e.kube.CoreV1().Secrets(e.namespace)
	l, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: pairing.LabelPairing + "=" + pairing.KindToken})
	if err != nil {
		g.progress("warning: failed to list the older tokens: %v", err)
		return nil
	}
	now, newest := g.opts.Now(), pairing.ReadTokenState(created)
	var revoked []string
	for i := range l.Items {
		s := &l.Items[i]
		st := pairing.ReadTokenState(s)
		switch {
		case st.ID == newest.ID:
		case !st.Expires.IsZero() && now.Sub(st.Expires) >= tokenRetention:
			if err := secrets.Delete(ctx, s.Name, metav1.DeleteOptions{}); err == nil {
				g.progress("removed Secret %s of token %s, expired at %s", s.Name, st.ID, st.Expires.Format(time.RFC3339))
			}
		case st.Peer == newest.Peer && !st.Used && !st.Revoked && now.Before(st.Expires):
			if _, err := secrets.Update(ctx, pairing.Revoke(s, now, "superseded by token "+newest.ID), metav1.UpdateOptions{}); err != nil {
				g.progress("warning: failed to revoke token %s (the agent refuses it anyway): %v", st.ID, err)
				continue
			}
			g.progress("revoked unused token %s for environment %s: a new token replaces it", st.ID, st.Peer)
			revoked = append(revoked, st.ID)
		}
	}
	return revoked
}

// tokenRetention is how long the Secret of an expired token is kept, as a record of who used it.
const tokenRetention = 24 * time.Hour

func newJoinCommand(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "join TOKEN --context B",
		Short: "Pair environment B with the environment that created TOKEN",
		Long: `Asks the agent of --context to redeem a token from "agentctl pair token": agentctl writes a
join request (Secret ecklink-join-<suffix> in the agent's namespace), the agent dials the token's
endpoints, checks the server's agent CA against the token's pin before it sends anything,
redeems the token, and both agents create a Peer for each other; this agent dials. agentctl
waits for the outcome, deletes the request and, unless --wait=false, waits for the stream.

Pass TOKEN as "-" to read it from stdin, which keeps it out of shell history.
--dry-run prints the join request (the token redacted) and creates nothing.`,
		Example: `  agentctl pair join "$TOKEN" --context west
  agentctl pair token --context east | agentctl pair join - --context west`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			raw := a[0]
			if raw == "-" {
				b, err := io.ReadAll(io.LimitReader(g.opts.In, 64<<10))
				if err != nil {
					return fmt.Errorf("failed to read the token from stdin: %w", err)
				}
				raw = string(b)
			}
			t, err := pairing.DecodeToken(raw)
			if err != nil {
				return usageErr(err)
			}
			return g.pairJoin(cmd.Context(), t, strings.TrimSpace(raw), dryRun, g.waitDefault(cmd, true))
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the join request instead of creating it")
	return cmd
}

// joinResult is the output of pair join.
type joinResult struct {
	Environment string `json:"environment"`
	Peer        string `json:"peer"`
	Message     string `json:"message"`
	Connected   bool   `json:"connected"`
}

func (g *globals) pairJoin(ctx context.Context, t *pairing.Token, encoded string, dryRun, wait bool) error {
	if now := g.opts.Now(); !now.Before(t.Expires) {
		return fmt.Errorf("token %s expired at %s (%s); create a new one with agentctl pair token", t.ID, t.Expires.Format(time.RFC3339), ago(now, t.Expires))
	}
	b, err := g.local()
	if err != nil {
		return err
	}
	name := pairing.JoinRequestPrefix + randomSuffix()
	req := pairing.JoinRequest(b.namespace, name, encoded)
	if dryRun {
		shown := req.DeepCopy()
		shown.Data = nil
		shown.StringData = map[string]string{pairing.KeyJoinToken: "<token>"}
		return g.printObjects(shown)
	}
	self, err := pairing.ReadIdentity(ctx, b.kube, b.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", b.label(), err)
	}
	if self.Environment == t.Environment {
		return fmt.Errorf("the token was made by environment %s itself: join it from another environment", t.Environment)
	}
	if _, err := b.crds.Peers().Get(ctx, b.namespace, t.Environment); err == nil {
		return fmt.Errorf("%s already has a Peer %s: unpair first (agentctl unpair %s)", b.label(), t.Environment, t.Environment)
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	secrets := b.kube.CoreV1().Secrets(b.namespace)
	if _, err := secrets.Create(ctx, req, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create the join request in %s: %w", b.label(), err)
	}
	// The request holds the token until the agent used it: remove it whatever happens.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := secrets.Delete(dctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			g.progress("warning: failed to delete join request %s/%s: %v", b.namespace, name, err)
		}
	}()
	var state, msg string
	created := time.Now()
	err = g.poll(ctx, "the agent to join "+t.Environment, func(ctx context.Context) (bool, string, error) {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", fmt.Errorf("failed to read the join request: %w", err)
		}
		state, msg = s.Annotations[pairing.AnnotationJoinState], s.Annotations[pairing.AnnotationJoinMessage]
		switch state {
		case pairing.JoinPaired, pairing.JoinFailed:
			return true, "", nil
		case pairing.JoinJoining:
			return false, "the agent is redeeming the token at " + strings.Join(t.Endpoints, ", "), nil
		default:
			if time.Since(created) < 10*time.Second {
				return false, fmt.Sprintf("the agent of environment %s picks up join request %s", self.Environment, name), nil
			}
			return false, fmt.Sprintf("the agent of environment %s has not picked up join request %s yet (is it running in namespace %s?)", self.Environment, name, b.namespace), nil
		}
	})
	if err != nil {
		return err
	}
	if state == pairing.JoinFailed {
		return fmt.Errorf("join failed: %s", msg)
	}
	res := joinResult{Environment: self.Environment, Peer: t.Environment, Message: msg}
	if wait {
		if err := g.waitConnected(ctx, []*env{b}, []string{t.Environment}); err != nil {
			return err
		}
		res.Connected = true
	}
	return g.print(res, func(w io.Writer) error {
		fmt.Fprintf(w, "%s: %s", self.Environment, msg)
		if res.Connected {
			fmt.Fprint(w, "; the stream is up")
		}
		fmt.Fprintln(w)
		return nil
	})
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
