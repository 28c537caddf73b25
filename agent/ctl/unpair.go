package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/pairing"
)

func newUnpairCommand(g *globals) *cobra.Command {
	var (
		p      peerFlags
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "unpair PEER --context A [--peer-context B]",
		Short: "End the pairing of environment A with PEER",
		Long: `Deletes Peer PEER in the environment of --context. The agent's finalizer sends Terminated to
the peer before the Peer goes: both sides then remove what the pairing applied (remote cluster
settings, credentials, CA copies) and invalidate what it issued (API keys), and the peer deletes
its own Peer of this environment. Afterwards neither agent accepts the other's certificates.

Waits until the Peer is gone unless --wait=false; with --peer-context, also until the peer's
Peer of this environment is gone. --dry-run prints the Peers that would go and deletes nothing.`,
		Example: `  agentctl unpair west --context east --peer-context west`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.unpair(cmd.Context(), a[0], p, dryRun, g.waitDefault(cmd, true))
		},
	}
	addPeerFlags(cmd, &p, false)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the Peers that would be deleted")
	return cmd
}

// unpairResult is the output of unpair.
type unpairResult struct {
	Environment string `json:"environment"`
	Peer        string `json:"peer"`
	// Removed lists the contexts whose Peer is gone.
	Removed []string `json:"removed"`
}

func (g *globals) unpair(ctx context.Context, name string, pf peerFlags, dryRun, wait bool) error {
	a, err := g.local()
	if err != nil {
		return err
	}
	p, err := a.crds.Peers().Get(ctx, a.namespace, name)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s has no Peer %s in namespace %s", a.label(), name, a.namespace)
	}
	if err != nil {
		return err
	}
	ida, err := pairing.ReadIdentity(ctx, a.kube, a.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", a.label(), err)
	}
	b, err := g.peer(pf)
	if err != nil {
		return err
	}
	var mirror *v1alpha1.Peer
	if b != nil {
		idb, err := pairing.ReadIdentity(ctx, b.kube, b.namespace)
		if err != nil {
			return fmt.Errorf("%s: %w", b.label(), err)
		}
		if idb.Environment != name {
			return usageErr(fmt.Errorf("--peer-context %s holds the agent of environment %s, not %s", pf.context, idb.Environment, name))
		}
		if mirror, err = b.crds.Peers().Get(ctx, b.namespace, ida.Environment); apierrors.IsNotFound(err) {
			mirror = nil
		} else if err != nil {
			return err
		}
	}
	if dryRun {
		objs := []any{p}
		if mirror != nil {
			objs = append(objs, mirror)
		}
		return g.printObjects(objs...)
	}
	if p.DeletionTimestamp == nil {
		if err := a.crds.Peers().Delete(ctx, a.namespace, name); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		g.progress("Peer %s deleted in %s: its agent tells %s and cleans up", name, a.label(), name)
	}
	res := unpairResult{Environment: ida.Environment, Peer: name}
	if !wait {
		return g.print(res, func(w io.Writer) error {
			fmt.Fprintf(w, "unpairing %s from %s\n", name, ida.Environment)
			return nil
		})
	}
	gone := func(e *env, peer string) func(context.Context) (bool, string, error) {
		start := time.Now()
		return func(ctx context.Context) (bool, string, error) {
			p, err := e.crds.Peers().Get(ctx, e.namespace, peer)
			if apierrors.IsNotFound(err) {
				return true, "", nil
			}
			if err != nil {
				return false, "", err
			}
			if p.DeletionTimestamp != nil && slices.Contains(p.Finalizers, v1alpha1.Finalizer) {
				return false, fmt.Sprintf("Peer %s in %s waits for its agent's cleanup (finalizer %s)%s", peer, e.label(), v1alpha1.Finalizer, hint(start, "; is the agent running?")), nil
			}
			return false, fmt.Sprintf("Peer %s in %s is still there: its agent deletes it when it learns of the unpairing%s", peer, e.label(),
				hint(start, "; it was not told if the two agents were not connected: delete it there (agentctl unpair)")), nil
		}
	}
	if err := g.poll(ctx, "Peer "+name+" to go", gone(a, name)); err != nil {
		return err
	}
	res.Removed = append(res.Removed, a.label())
	if b != nil {
		if err := g.poll(ctx, "the peer to end its side", gone(b, ida.Environment)); err != nil {
			return err
		}
		res.Removed = append(res.Removed, b.label())
	}
	return g.print(res, func(w io.Writer) error {
		if b != nil {
			fmt.Fprintf(w, "unpaired %s and %s: both sides removed their Peer\n", ida.Environment, name)
		} else {
			fmt.Fprintf(w, "unpaired %s from %s (the peer ends its side when it receives Terminated)\n", name, ida.Environment)
		}
		return nil
	})
}
