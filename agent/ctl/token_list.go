package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/pairing"
)

func newTokenListCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list --context A",
		Short: "List the pairing tokens of environment A and what each is",
		Long: `Lists the tokens of the agent of --context, newest first: the environment each is for, its
status (open: redeemable; used; expired; revoked; superseded: a newer token for the same
environment replaced it; unbound: made by agentctl 0.1.0 without --peer, which agents refuse),
when it was created and expires, and who used it. Secrets are never shown: only their hashes
are stored.

The expiry is the one the token asks for; an agent redeems a token at most its
pairing.tokenMaxTTL (default 1h) after creation.`,
		Example: `  agentctl pair token list --context east
  agentctl pair token list --context east -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return g.listTokens(cmd.Context()) },
	}
}

// tokenRow is one token in the output of pair token list.
type tokenRow struct {
	ID            string     `json:"id"`
	Peer          string     `json:"peer"`
	Status        string     `json:"status"`
	Created       time.Time  `json:"created"`
	Expires       time.Time  `json:"expires"`
	UsedBy        string     `json:"usedBy,omitempty"`
	UsedAt        *time.Time `json:"usedAt,omitempty"`
	RevokedAt     *time.Time `json:"revokedAt,omitempty"`
	RevokedReason string     `json:"revokedReason,omitempty"`
	SupersededBy  string     `json:"supersededBy,omitempty"`
}

func (g *globals) tokenSecrets(ctx context.Context, e *env) ([]*corev1.Secret, error) {
	l, err := e.kube.CoreV1().Secrets(e.namespace).List(ctx, metav1.ListOptions{LabelSelector: pairing.LabelPairing + "=" + pairing.KindToken})
	if err != nil {
		return nil, fmt.Errorf("failed to list the tokens of %s: %w", e.label(), err)
	}
	out := make([]*corev1.Secret, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, nil
}

func (g *globals) listTokens(ctx context.Context) error {
	a, err := g.local()
	if err != nil {
		return err
	}
	secrets, err := g.tokenSecrets(ctx, a)
	if err != nil {
		return err
	}
	now := g.opts.Now()
	rows := []tokenRow{}
	for _, st := range pairing.TokenStatuses(secrets, now) {
		rows = append(rows, tokenRow{
			ID: st.ID, Peer: st.Peer, Status: st.Status, Created: st.Created, Expires: st.Expires, UsedBy: st.UsedBy,
			UsedAt: optionalTime(st.UsedAt), RevokedAt: optionalTime(st.RevokedAt), RevokedReason: st.RevokedReason, SupersededBy: st.SupersededBy,
		})
	}
	return g.print(rows, func(w io.Writer) error {
		if len(rows) == 0 {
			fmt.Fprintf(w, "no pairing tokens in %s: create one with agentctl pair token --peer <environment>\n", a.label())
			return nil
		}
		tw := newTable(w)
		row(tw, "ID", "PEER", "STATUS", "CREATED", "EXPIRES", "USED BY")
		for _, r := range rows {
			status := r.Status
			if r.SupersededBy != "" {
				status += " by " + r.SupersededBy
			}
			row(tw, r.ID, dash(r.Peer), status, ago(now, r.Created), until(now, r.Expires), dash(r.UsedBy))
		}
		return tw.Flush()
	})
}

// optionalTime omits the zero time from JSON and YAML.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func newTokenRevokeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID --context A",
		Short: "Revoke an unused pairing token of environment A",
		Long: `Marks the token ID of the agent of --context revoked: the agent refuses it from then on (the
Secret stays, as a record, until agentctl removes it a day after its expiry). A token that was
used already paired an environment: end that pairing with agentctl unpair instead.`,
		Example: `  agentctl pair token revoke 3f9a0c1d2e4b5a69 --context east`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := pairing.ValidateTokenID(a[0]); err != nil {
				return usageErr(err)
			}
			return g.revokeToken(cmd.Context(), a[0])
		},
	}
}

// revokeResult is the output of pair token revoke.
type revokeResult struct {
	ID      string    `json:"id"`
	Peer    string    `json:"peer"`
	Revoked time.Time `json:"revoked"`
}

func (g *globals) revokeToken(ctx context.Context, id string) error {
	a, err := g.local()
	if err != nil {
		return err
	}
	secrets := a.kube.CoreV1().Secrets(a.namespace)
	s, err := secrets.Get(ctx, pairing.TokenSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && s.Labels[pairing.LabelPairing] != pairing.KindToken {
		return fmt.Errorf("%s has no token %s (agentctl pair token list shows them)", a.label(), id)
	}
	if err != nil {
		return fmt.Errorf("failed to read token %s in %s: %w", id, a.label(), err)
	}
	st := pairing.ReadTokenState(s)
	switch {
	case st.Used:
		return fmt.Errorf("token %s was already used by environment %s at %s: to end that pairing, run agentctl unpair %s",
			id, st.UsedBy, st.UsedAt.Format(time.RFC3339), st.UsedBy)
	case st.Revoked:
		g.progress("token %s was already revoked at %s (%s)", id, st.RevokedAt.Format(time.RFC3339), st.RevokedReason)
	default:
		// The update carries the resourceVersion read: if the agent consumed the token meanwhile,
		// it conflicts, and the token counts as used.
		if _, err := secrets.Update(ctx, pairing.Revoke(s, g.opts.Now(), "revoked with agentctl"), metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("token %s changed while it was revoked (redeemed just now?): check agentctl pair token list", id)
			}
			return fmt.Errorf("failed to revoke token %s in %s: %w", id, a.label(), err)
		}
		st.RevokedAt = g.opts.Now()
	}
	res := revokeResult{ID: id, Peer: st.Peer, Revoked: st.RevokedAt.UTC().Truncate(time.Second)}
	return g.print(res, func(w io.Writer) error {
		fmt.Fprintf(w, "token %s (for environment %s) is revoked: the agent of %s refuses it\n", id, dash(st.Peer), a.label())
		return nil
	})
}
