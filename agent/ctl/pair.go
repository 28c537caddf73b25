package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/pairing"
)

// Values of pair --dialer.
const (
	dialerSelf = "self"
	dialerPeer = "peer"
)

func addPeerFlags(cmd *cobra.Command, p *peerFlags, required bool) {
	help := "kubeconfig context of the other environment"
	if !required {
		help += " (optional)"
	}
	cmd.Flags().StringVar(&p.context, "peer-context", "", help)
	cmd.Flags().StringVar(&p.kubeconfig, "peer-kubeconfig", "", "kubeconfig file of the other environment (default: --kubeconfig)")
	cmd.Flags().StringVar(&p.namespace, "peer-namespace", "", "namespace of the other environment's agent (default: --namespace)")
	if required {
		_ = cmd.MarkFlagRequired("peer-context")
	}
}

// waitDefault applies a command's default for --wait when the flag was not given.
func (g *globals) waitDefault(cmd *cobra.Command, def bool) bool {
	if cmd.Flags().Changed("wait") {
		return g.wait
	}
	return def
}

func newPairCommand(g *globals) *cobra.Command {
	var (
		p      peerFlags
		dialer string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "pair --context A --peer-context B",
		Short: "Pair two environments directly: create a Peer in each",
		Long: `Reads the identity of both agents (ConfigMap ecklink-agent-identity: environment, agent CA
bundle, endpoints) through both Kubernetes APIs and creates a Peer for each in the other. The
agent of --context dials the other (--dialer=self, the default) or waits for it to dial
(--dialer=peer); the dialed agent must advertise an endpoint. Waits until the stream is up
unless --wait=false. When only one side can reach the other's Kubernetes API, use
"pair token" and "pair join" instead.

--dry-run prints the Peer objects (YAML, or a JSON list with -o json) and changes nothing.`,
		Example: `  agentctl pair --context east --peer-context west
  agentctl pair --context east --peer-context west --dialer=peer --dry-run`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dialer != dialerSelf && dialer != dialerPeer {
				return usageErr(fmt.Errorf("--dialer %q: want self or peer", dialer))
			}
			return g.pairDirect(cmd.Context(), p, dialer == dialerSelf, dryRun, g.waitDefault(cmd, true))
		},
	}
	addPeerFlags(cmd, &p, true)
	cmd.Flags().StringVar(&dialer, "dialer", dialerSelf, "which side opens the stream: self (the agent of --context) or peer")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the Peer objects instead of creating them")
	cmd.AddCommand(newTokenCommand(g), newJoinCommand(g))
	return cmd
}

// pairResult is the output of pair.
type pairResult struct {
	Peers     []*v1alpha1.Peer `json:"peers"`
	Connected bool             `json:"connected"`
}

func (g *globals) pairDirect(ctx context.Context, pf peerFlags, selfDials, dryRun, wait bool) error {
	a, err := g.local()
	if err != nil {
		return err
	}
	b, err := g.peer(pf)
	if err != nil {
		return err
	}
	ida, err := pairing.ReadIdentity(ctx, a.kube, a.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", a.label(), err)
	}
	idb, err := pairing.ReadIdentity(ctx, b.kube, b.namespace)
	if err != nil {
		return fmt.Errorf("%s: %w", b.label(), err)
	}
	if ida.Environment == idb.Environment {
		return fmt.Errorf("both contexts hold an agent of environment %q: environment names must be unique among peers", ida.Environment)
	}
	dialed := idb
	if !selfDials {
		dialed = ida
	}
	if len(dialed.Endpoints) == 0 {
		return fmt.Errorf("environment %s advertises no endpoint, so it cannot be dialed: set --advertise-endpoint on its agent, or let it dial (--dialer=%s)",
			dialed.Environment, map[bool]string{true: dialerPeer, false: dialerSelf}[selfDials])
	}
	inA := pairing.NewPeer(a.namespace, idb.Environment, idb.Bundle, idb.Endpoints, selfDials, "agentctl pair")
	inB := pairing.NewPeer(b.namespace, ida.Environment, ida.Bundle, ida.Endpoints, !selfDials, "agentctl pair")
	if dryRun {
		return g.printObjects(inA, inB)
	}
	for _, c := range []struct {
		e    *env
		name string
	}{{a, idb.Environment}, {b, ida.Environment}} {
		if _, err := c.e.crds.Peers().Get(ctx, c.e.namespace, c.name); err == nil {
			return fmt.Errorf("%s already has a Peer %s: unpair first (agentctl unpair %s --%s)", c.e.label(), c.name, c.name, contextFlag(c.e))
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	createdA, err := a.crds.Peers().Create(ctx, inA)
	if err != nil {
		return err
	}
	createdB, err := b.crds.Peers().Create(ctx, inB)
	if err != nil {
		if derr := a.crds.Peers().Delete(ctx, a.namespace, inA.Name); derr != nil {
			return fmt.Errorf("%w (and removing Peer %s from %s again failed: %v)", err, inA.Name, a.label(), derr)
		}
		return err
	}
	g.progress("Peer %s created in %s (%s), Peer %s created in %s (%s)",
		createdA.Name, a.label(), dialDescription(createdA), createdB.Name, b.label(), dialDescription(createdB))
	res := pairResult{Peers: []*v1alpha1.Peer{createdA, createdB}}
	if wait {
		if err := g.waitConnected(ctx, []*env{a, b}, []string{createdA.Name, createdB.Name}); err != nil {
			return err
		}
		res.Connected = true
	}
	return g.print(res, func(w io.Writer) error {
		if res.Connected {
			fmt.Fprintf(w, "paired %s and %s: the stream is up\n", ida.Environment, idb.Environment)
		} else {
			fmt.Fprintf(w, "paired %s and %s\n", ida.Environment, idb.Environment)
		}
		return nil
	})
}

func contextFlag(e *env) string {
	if e.context == "" {
		return "context <current>"
	}
	return "context " + e.context
}

func dialDescription(p *v1alpha1.Peer) string {
	if p.Spec.Dial {
		return "dials " + p.Spec.Endpoints[0]
	}
	return "waits to be dialed"
}

// peerConnection describes a Peer's Connected condition.
func peerConnection(p *v1alpha1.Peer) (bool, string) {
	for _, c := range p.Status.Conditions {
		if c.Type == v1alpha1.ConditionConnected {
			return c.Status == metav1.ConditionTrue, fmt.Sprintf("Connected=%s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no status yet"
}

// waitConnected waits until the Peers named are Connected in their environments.
func (g *globals) waitConnected(ctx context.Context, envs []*env, names []string) error {
	start := time.Now()
	return g.poll(ctx, "the peering stream", func(ctx context.Context) (bool, string, error) {
		for i, e := range envs {
			p, err := e.crds.Peers().Get(ctx, e.namespace, names[i])
			if err != nil {
				return false, "", err
			}
			if ok, desc := peerConnection(p); !ok {
				return false, fmt.Sprintf("Peer %s in %s: %s%s", names[i], e.label(), desc, hint(start, " (are both agents running?)")), nil
			}
		}
		return true, "", nil
	})
}
