package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/rotation"
	"github.com/ecklink/ecklink/agent/signing"
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

func newRotateSigningCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "signing --context A",
		Short: "Rotate the strong-identity signing CA of environment A now",
		Long: `Asks the agent of --context to rotate its signing CA now (strong identity, Elasticsearch 9.3+:
the CA that issues the signing certificate of each local Elasticsearch, whose subject the peers
put into the certificate_identity of the link's API key), as it does on its own at 2/3 of the
CA's life: it creates a new CA and sends it to every peer with the import requests, signs with
it as soon as every peer's Elasticsearch trusts it, and reissues each local Elasticsearch's
signing certificate from it, without disconnecting any link. The CA it replaces stays trusted
by the peers until its certificates expire or the next rotation, whichever comes first.

The request is an annotation of the agent's public ConfigMap ecklink-agent-identity
(ecklink.io/rotate-signing-request), where the agent reports its progress: agentctl needs no
access to the CA's key or its Secret. The agent takes requests up once a minute. Waits until
the new CA signs unless --wait=false.`,
		Example: `  agentctl rotate signing --context east`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.rotateSigning(cmd.Context(), g.waitDefault(cmd, true))
		},
	}
}

// rotateSigningResult is the output of rotate signing.
type rotateSigningResult struct {
	caRotationRequest
	caRotationReport
}

func (g *globals) rotateSigning(ctx context.Context, wait bool) error {
	e, err := g.local()
	if err != nil {
		return err
	}
	res := rotateSigningResult{caRotationRequest: caRotationRequest{Request: g.opts.Now().UTC().Format(time.RFC3339Nano)}}
	err = requestCARotation(ctx, e, func(cm *corev1.ConfigMap) bool {
		res.Environment = cm.Data[identity.KeyEnvironment]
		cm.Annotations[signing.AnnotationRotateRequest] = res.Request
		return true
	})
	if err != nil {
		return fmt.Errorf("failed to request the signing CA rotation: %w", err)
	}
	g.progress("rotation of the signing CA of %s requested (request %s)", res.Environment, res.Request)
	return g.finishCARotation(ctx, e, signingCARotation, wait, &res, res.caRotationRequest, &res.caRotationReport, func(w io.Writer) {
		fmt.Fprintf(w, "rotation of the signing CA of %s requested; the agent reports on it in the annotation %s of ConfigMap %s/%s\n",
			res.Environment, signing.AnnotationRotateStatus, e.namespace, identity.ConfigMapName)
	})
}

func newRotateKeyCommand(g *globals) *cobra.Command {
	var invalidateOld bool
	cmd := &cobra.Command{
		Use:   "key REMOTECLUSTER --context A [--invalidate-old-now]",
		Short: "Rotate the API key of one remote cluster link now",
		Long: `Asks for a new cross-cluster API key for the link of REMOTECLUSTER (namespace/name, or a name
unique across namespaces) in the environment of --context, the consumer: use it when the key
may have leaked. The request is an annotation of the RemoteCluster (ecklink.io/rotate-key-request);
the agent carries it to the peer, whose agent makes a new key in its Elasticsearch and sends it.

Make-before-break (default): the old key stays valid until this side's Elasticsearch is
connected with the new one, so the link never disconnects. ECK restarts the local Elasticsearch
to load the new key, as on any key rotation.

With --invalidate-old-now (an emergency), the peer invalidates the old key as soon as the new
one exists: the link is DISCONNECTED until the new key is in effect here (the restart).

The peer decides when to answer: it rotates a link's key on request at most once per its
rate-limit window (5 minutes by default, so a peer cannot churn keys), and answers a request
made within the window when the window ends; its ClusterExport gets an Event either way.
Waits until the new key is in effect (status.apiKey.rotationRequest is the request) unless
--wait=false.`,
		Example: `  agentctl rotate key logs/west-logs --context east
  agentctl rotate key west-logs --context east --invalidate-old-now`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.rotateKey(cmd.Context(), a[0], invalidateOld, g.waitDefault(cmd, true))
		},
	}
	cmd.Flags().BoolVar(&invalidateOld, "invalidate-old-now", false, "emergency: invalidate the old key as soon as the new one exists (disconnects the link until the new key is in effect)")
	return cmd
}

// rotateKeyResult is the output of rotate key.
type rotateKeyResult struct {
	RemoteCluster    string `json:"remoteCluster"`
	Alias            string `json:"alias"`
	Peer             string `json:"peer"`
	Request          string `json:"request"`
	InvalidateOldNow bool   `json:"invalidateOldNow"`
	OldKey           string `json:"oldKey,omitempty"`
	NewKey           string `json:"newKey,omitempty"`
	// Done: the new key is in effect in the local Elasticsearch.
	Done      bool `json:"done"`
	Connected bool `json:"connected"`
}

func (g *globals) rotateKey(ctx context.Context, ref string, invalidateOld, wait bool) error {
	e, err := g.local()
	if err != nil {
		return err
	}
	rc, err := findRemoteCluster(ctx, e, ref)
	if err != nil {
		return err
	}
	if rc.Spec.AcceptedModel() != v1alpha1.SecurityModelAPIKey || rc.Status.Model == v1alpha1.SecurityModelCertificate {
		return fmt.Errorf("RemoteCluster %s/%s uses the certificate model: it has no API key to rotate", rc.Namespace, rc.Name)
	}
	res := rotateKeyResult{RemoteCluster: rc.Namespace + "/" + rc.Name, Alias: rc.Spec.Alias, Peer: rc.Spec.Peer,
		Request: g.opts.Now().UTC().Format(time.RFC3339Nano), InvalidateOldNow: invalidateOld}
	if rc.Status.APIKey != nil {
		res.OldKey = rc.Status.APIKey.ID
	}
	if invalidateOld {
		g.progress("--invalidate-old-now: environment %s invalidates key %s as soon as the new key exists; alias %s is DISCONNECTED until the new key is in effect here",
			rc.Spec.Peer, dash(res.OldKey), rc.Spec.Alias)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := e.crds.RemoteClusters().Get(ctx, rc.Namespace, rc.Name)
		if err != nil {
			return err
		}
		a := cur.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[v1alpha1.AnnotationRotateKeyRequest] = res.Request
		if invalidateOld {
			a[v1alpha1.AnnotationRotateKeyInvalidateOld] = "true"
		} else {
			delete(a, v1alpha1.AnnotationRotateKeyInvalidateOld)
		}
		cur.SetAnnotations(a)
		_, err = e.crds.RemoteClusters().Update(ctx, cur)
		return err
	}); err != nil {
		return fmt.Errorf("failed to request the key rotation: %w", err)
	}
	g.progress("rotation of the API key of %s (alias %s, peer %s) requested (request %s)", res.RemoteCluster, res.Alias, res.Peer, res.Request)
	if wait {
		if err := g.poll(ctx, "the new API key of "+res.RemoteCluster, g.keyRotationProgress(e, rc.Namespace, rc.Name, &res)); err != nil {
			return err
		}
	}
	return g.print(res, func(w io.Writer) error {
		if !res.Done {
			fmt.Fprintf(w, "rotation of the API key of %s requested; follow it with: kubectl --%s get remotecluster -n %s %s -o jsonpath='{.status.apiKey}'\n",
				res.RemoteCluster, strings.ReplaceAll(contextFlag(e), " ", "="), rc.Namespace, rc.Name)
			return nil
		}
		state := "connected"
		if !res.Connected {
			state = "not connected yet"
		}
		fmt.Fprintf(w, "rotated the API key of %s: %s -> %s, in effect (%s)\n", res.RemoteCluster, dash(res.OldKey), res.NewKey, state)
		return nil
	})
}

// keyRotationProgress reads the RemoteCluster's status into res: done once the key in effect
// answers the request.
func (g *globals) keyRotationProgress(e *env, ns, name string, res *rotateKeyResult) func(context.Context) (bool, string, error) {
	start := time.Now()
	return func(ctx context.Context) (bool, string, error) {
		rc, err := e.crds.RemoteClusters().Get(ctx, ns, name)
		if err != nil {
			return false, "", err
		}
		if rc.GetAnnotations()[v1alpha1.AnnotationRotateKeyRequest] != res.Request {
			return false, "", fmt.Errorf("another rotation request replaced this one (request %s)", rc.GetAnnotations()[v1alpha1.AnnotationRotateKeyRequest])
		}
		res.Connected = meta.IsStatusConditionTrue(rc.Status.Conditions, v1alpha1.ConditionConnected)
		if k := rc.Status.APIKey; k != nil && k.RotationRequest == res.Request {
			res.NewKey, res.Done = k.ID, true
			return true, "", nil
		}
		if c := meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionCredentialsApplied); c != nil &&
			c.Status != metav1.ConditionTrue && c.Reason == v1alpha1.ReasonElasticsearchRestarting {
			return false, "new key received: " + c.Message, nil
		}
		return false, "waiting for environment " + rc.Spec.Peer + " to send a new key" +
			hint(start, " (it rotates a link's key on request at most once per its rate-limit window, 5 minutes by default: see the Events of its ClusterExport "+
				rc.Spec.Export.Namespace+"/"+rc.Spec.Export.Name+"; is its agent connected? agentctl status)"), nil
	}
}

// rotate identity and rotate signing ask the agent for a CA rotation the same way: a request
// annotation of its identity ConfigMap, and a report (rotation.Status) in another one.

// caRotation is what tells the rotations of the agent CA and of the signing CA apart.
type caRotation struct {
	// ca names the CA in messages.
	ca string
	// statusKey is the annotation of the agent's report.
	statusKey string
	// refused names the request when the agent refuses it.
	refused string
	// waitHint is added to the progress line after a while when the agent has not taken the
	// request up.
	waitHint string
}

var (
	agentCARotation = caRotation{ca: "agent CA", statusKey: identity.AnnotationRotateStatus, refused: "rotation request",
		waitHint: " (is the agent running? it acts when it leads)"}
	signingCARotation = caRotation{ca: "signing CA", statusKey: signing.AnnotationRotateStatus, refused: "signing CA rotation request",
		waitHint: " (it does once a minute, when it leads: is the agent running?)"}
)

// caRotationRequest names a CA rotation request in the output of rotate identity and rotate
// signing.
type caRotationRequest struct {
	Environment string `json:"environment"`
	Request     string `json:"request"`
}

// caRotationReport is the agent's last report on a CA rotation request, as agentctl prints it.
type caRotationReport struct {
	Phase   string `json:"phase,omitempty"`
	Message string `json:"message,omitempty"`
	OldCA   string `json:"oldCA,omitempty"`
	NewCA   string `json:"newCA,omitempty"`
}

// printDone writes the text output of a rotation of r's CA of environment that is Done.
func (rep caRotationReport) printDone(w io.Writer, r caRotation, environment string) {
	fmt.Fprintf(w, "rotated the %s of %s: %s -> %s\n%s\n", r.ca, environment, short(rep.OldCA), short(rep.NewCA), rep.Message)
}

// requestCARotation applies request to a copy of e's identity ConfigMap, whose annotations are
// never nil, and writes it unless request returns false; it retries on conflicts.
func requestCARotation(ctx context.Context, e *env, request func(cm *corev1.ConfigMap) (update bool)) error {
	cms := e.kube.CoreV1().ConfigMaps(e.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s has no agent identity (ConfigMap %s/%s): is the agent installed in namespace %s and started?",
				e.label(), e.namespace, identity.ConfigMapName, e.namespace)
		}
		if err != nil {
			return err
		}
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		if !request(upd) {
			return nil
		}
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
}

// waitCARotation waits until the agent of e reports request Done, or refuses it, with its last
// report in rep.
func (g *globals) waitCARotation(ctx context.Context, e *env, r caRotation, request string, rep *caRotationReport) error {
	return g.poll(ctx, "the rotation of the "+r.ca, r.progress(e, request, rep))
}

// finishCARotation waits, when wait is set, until the agent of e reports req, a rotation of r's
// CA, Done, with its last report in rep; then it prints res, the command's output: in text,
// rep.printDone once Done and pending before.
func (g *globals) finishCARotation(ctx context.Context, e *env, r caRotation, wait bool, res any, req caRotationRequest,
	rep *caRotationReport, pending func(w io.Writer)) error {
	if wait {
		if err := g.waitCARotation(ctx, e, r, req.Request, rep); err != nil {
			return err
		}
	}
	return g.print(res, func(w io.Writer) error {
		if rep.Phase == rotation.Done {
			rep.printDone(w, r, req.Environment)
			return nil
		}
		pending(w)
		return nil
	})
}

// progress reads the agent's report on request, from e's identity ConfigMap, into rep: done once
// the rotation is Done, an error once it Failed.
func (r caRotation) progress(e *env, request string, rep *caRotationReport) func(context.Context) (bool, string, error) {
	start := time.Now()
	return func(ctx context.Context) (bool, string, error) {
		cm, err := e.kube.CoreV1().ConfigMaps(e.namespace).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		st := rotation.ReadStatus(cm.GetAnnotations(), r.statusKey)
		if st.Request != request {
			return false, "the agent has not taken the request up yet" + hint(start, r.waitHint), nil
		}
		*rep = caRotationReport{Phase: st.Phase, Message: st.Message, OldCA: st.OldCA, NewCA: st.NewCA}
		switch st.Phase {
		case rotation.Done:
			return true, "", nil
		case rotation.Failed:
			return false, "", fmt.Errorf("the agent refused the %s: %s", r.refused, st.Message)
		}
		return false, st.Phase + ": " + st.Message, nil
	}
}
