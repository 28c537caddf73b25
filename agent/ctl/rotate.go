package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

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
	Environment string `json:"environment"`
	Request     string `json:"request"`
	RetireOld   bool   `json:"retireOld"`
	Phase       string `json:"phase,omitempty"`
	Message     string `json:"message,omitempty"`
	OldCA       string `json:"oldCA,omitempty"`
	NewCA       string `json:"newCA,omitempty"`
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
	if wait {
		if err := g.poll(ctx, "the rotation of the agent CA", g.rotationProgress(e, &res)); err != nil {
			return err
		}
	}
	return g.print(res, func(w io.Writer) error {
		switch res.Phase {
		case identity.RotationDone:
			fmt.Fprintf(w, "rotated the agent CA of %s: %s -> %s\n%s\n", res.Environment, short(res.OldCA), short(res.NewCA), res.Message)
		default:
			fmt.Fprintf(w, "rotation of the agent CA of %s requested; follow it with: agentctl rotate identity --%s\n", res.Environment, contextFlag(e))
		}
		return nil
	})
}

// requestRotation writes the request annotations, or follows the request under way.
func (g *globals) requestRotation(ctx context.Context, e *env, retireOld bool) (rotateResult, bool, error) {
	var res rotateResult
	following := false
	cms := e.kube.CoreV1().ConfigMaps(e.namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s has no agent identity (ConfigMap %s/%s): is the agent installed in namespace %s and started?",
				e.label(), e.namespace, identity.ConfigMapName, e.namespace)
		}
		if err != nil {
			return err
		}
		id, retiring, st := identity.ReadRotation(cm)
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		res = rotateResult{Environment: cm.Data[identity.KeyEnvironment], RetireOld: retireOld}
		following = id != "" && !(st.Request == id && st.Finished())
		if following {
			res.Request, res.RetireOld = id, retireOld || retiring
			if !retireOld || retiring {
				return nil
			}
		} else {
			res.Request = g.opts.Now().UTC().Format(time.RFC3339Nano)
			upd.Annotations[identity.AnnotationRotateRequest] = res.Request
		}
		if res.RetireOld {
			upd.Annotations[identity.AnnotationRotateRetireOld] = "true"
		} else {
			delete(upd.Annotations, identity.AnnotationRotateRetireOld)
		}
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return res, false, fmt.Errorf("failed to request the rotation: %w", err)
	}
	return res, following, nil
}

// rotationProgress reads the agent's report on the request of res into res.
func (g *globals) rotationProgress(e *env, res *rotateResult) func(context.Context) (bool, string, error) {
	start := time.Now()
	return func(ctx context.Context) (bool, string, error) {
		cm, err := e.kube.CoreV1().ConfigMaps(e.namespace).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		_, _, st := identity.ReadRotation(cm)
		if st.Request != res.Request {
			return false, "the agent has not taken the request up yet" + hint(start, " (is the agent running? it acts when it leads)"), nil
		}
		res.Phase, res.Message, res.OldCA, res.NewCA = st.Phase, st.Message, st.OldCA, st.NewCA
		switch st.Phase {
		case identity.RotationDone:
			return true, "", nil
		case identity.RotationFailed:
			return false, "", fmt.Errorf("the agent refused the rotation request: %s", st.Message)
		}
		return false, st.Phase + ": " + st.Message, nil
	}
}
