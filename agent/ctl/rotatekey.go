package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

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

// findRemoteCluster returns the RemoteCluster ref names: namespace/name, or a name unique across
// namespaces.
func findRemoteCluster(ctx context.Context, e *env, ref string) (*v1alpha1.RemoteCluster, error) {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		rc, err := e.crds.RemoteClusters().Get(ctx, ns, name)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("no RemoteCluster %s in %s", ref, e.label())
		}
		return rc, err
	}
	all, err := e.crds.RemoteClusters().List(ctx, "", metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	all = slices.DeleteFunc(all, func(rc *v1alpha1.RemoteCluster) bool { return rc.Name != ref })
	switch len(all) {
	case 0:
		return nil, fmt.Errorf("no RemoteCluster named %s in %s", ref, e.label())
	case 1:
		return all[0], nil
	default:
		return nil, usageErr(fmt.Errorf("RemoteCluster %s exists in %d namespaces: name it as namespace/name", ref, len(all)))
	}
}
