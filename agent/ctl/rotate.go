package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/identity"
)

func newRotateCommand(g *globals) *cobra.Command {
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate credentials now: the agent CA, a link's API key, the signing CA",
		Args:  args(cobra.NoArgs),
	}
	var retireOld bool
	id := &cobra.Command{
		Use:   "identity --context A [--retire-old]",
		Short: "Rotate the agent CA of environment A now",
		Long: `Asks the agent of --context to rotate its agent CA now, as it does on its own at 2/3 of the
CA's life: it creates a new CA and announces it to every peer, signs with it as soon as every
peer acknowledged it, and moves its streams to leaves of the new CA without disconnecting them.
The request is an annotation of the agent's public ConfigMap ecklink-agent-identity, where the
agent reports its progress: agentctl needs no access to the CA's key or its Secret.

Without --retire-old, the old CA stays trusted by the peers for one leaf lifetime (until no leaf
it issued can still be valid). With --retire-old, the agent removes it from its bundle, and every
peer from its trust, as soon as every peer acknowledged the new CA and the streams moved to it:
use it when the old CA's key may be compromised. A stream still presenting a leaf of the old CA
then ends, and a client presenting one is refused. A peer that is not connected holds the
rotation up: the agent waits for it and says so.

If a rotation is under way, no new one is requested: agentctl follows it (and asks it to retire
the old CA with --retire-old). Waits until the rotation is done unless --wait=false.`,
		Example: `  agentctl rotate identity --context east --retire-old`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.rotateIdentity(cmd.Context(), retireOld, g.waitDefault(cmd, true))
		},
	}
	id.Flags().BoolVar(&retireOld, "retire-old", false, "remove the old CA from every peer's trust once they acknowledged the new one")
	rotate.AddCommand(id, newRotateKeyCommand(g), newRotateSigningCommand(g))
	return rotate
}

// rotateResult is the output of rotate identity.
type rotateResult struct {
	caRotationRequest
	RetireOld bool `json:"retireOld"`
	caRotationReport
}

func (g *globals) rotateIdentity(ctx context.Context, retireOld, wait bool) error {
	e, err := g.local()
	if err != nil {
		return err
	}
	res, following, err := g.requestRotation(ctx, e, retireOld)
	if err != nil {
		return err
	}
	if following {
		g.progress("a rotation of the agent CA of %s is under way (request %s): following it", res.Environment, res.Request)
	} else {
		g.progress("rotation of the agent CA of %s requested (request %s)", res.Environment, res.Request)
	}
	return g.finishCARotation(ctx, e, agentCARotation, wait, &res, res.caRotationRequest, &res.caRotationReport, func(w io.Writer) {
		fmt.Fprintf(w, "rotation of the agent CA of %s requested; follow it with: agentctl rotate identity --%s\n", res.Environment, contextFlag(e))
	})
}

// requestRotation writes the request annotations, or follows the request under way.
func (g *globals) requestRotation(ctx context.Context, e *env, retireOld bool) (rotateResult, bool, error) {
	var res rotateResult
	following := false
	err := requestCARotation(ctx, e, func(cm *corev1.ConfigMap) bool {
		id, retiring, st := identity.ReadRotation(cm)
		res = rotateResult{caRotationRequest: caRotationRequest{Environment: cm.Data[identity.KeyEnvironment]}, RetireOld: retireOld}
		following = st.Pending(id)
		if following {
			res.Request, res.RetireOld = id, retireOld || retiring
			if !retireOld || retiring {
				return false
			}
		} else {
			res.Request = g.opts.Now().UTC().Format(time.RFC3339Nano)
			cm.Annotations[identity.AnnotationRotateRequest] = res.Request
		}
		if res.RetireOld {
			cm.Annotations[identity.AnnotationRotateRetireOld] = "true"
		} else {
			delete(cm.Annotations, identity.AnnotationRotateRetireOld)
		}
		return true
	})
	if err != nil {
		return res, false, fmt.Errorf("failed to request the rotation: %w", err)
	}
	return res, following, nil
}
