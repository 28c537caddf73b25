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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
)

// managedSelector selects the Secrets and ConfigMaps the agent creates: its identity
// (managed-by ecklink-agent), pairing tokens, signing CA, remote credentials and CA copies
// (managed-by ecklink).
const managedSelector = "app.kubernetes.io/managed-by in (ecklink,ecklink-agent)"

// agentSelector selects the chart's agent Deployment.
const agentSelector = "app.kubernetes.io/part-of=ecklink,app.kubernetes.io/component=agent"

// uninstallFlags are the flags of `agentctl uninstall`.
type uninstallFlags struct {
	namespaces []string
	leaseName  string
	force      bool
	dryRun     bool
}

// uninstallResult is the output of uninstall.
type uninstallResult struct {
	// Removed are the ecklink objects deleted with the agent's cleanup ("Kind ns/name").
	Removed []string `json:"removed"`
	// Forced are objects whose finalizer was removed without the agent's cleanup (--force).
	Forced []string `json:"forced,omitempty"`
	// Purged are the agent's own objects in its namespace (keys, identity, Lease).
	Purged []string `json:"purged,omitempty"`
	// AgentRunning is true when the agent is still deployed, so its own objects were kept.
	AgentRunning bool `json:"agentRunning"`
	// Leftovers are Secrets and ConfigMaps the agent created outside its namespace that remain.
	Leftovers []string `json:"leftovers,omitempty"`
}

func newUninstallCommand(g *globals) *cobra.Command {
	f := &uninstallFlags{}
	cmd := &cobra.Command{
		Use:   "uninstall --context A",
		Short: "Remove every ecklink object of an environment, with the agent's cleanup, so nothing is left stuck",
		Long: `Removes ecklink from the environment of --context in the order that lets the running agent undo
what it did, then removes what only the agent itself used:

  1. RemoteClusters: the agent removes its remote cluster settings, credentials, CA copies and
     wiring from each local Elasticsearch;
  2. ClusterExports: the agent invalidates the cross-cluster API keys in its Elasticsearch;
  3. Peers: the agent tells each peer (Terminated), which removes its side of the pairing.
  Each step waits up to --timeout until the agent's finalizer (` + v1alpha1.Finalizer + `) let the
  objects go. If the agent is gone, --force removes the finalizers instead and lists what the agent
  could not clean up.
  4. Once the agent is no longer deployed (after helm uninstall): its own objects in its
     namespace: agent CA and signing CA Secrets (private keys), identity ConfigMap, pairing
     tokens, Lease. While it is deployed they are kept (it would recreate them): run uninstall
     again after helm uninstall.

Order: agentctl uninstall, helm uninstall, agentctl uninstall. The CRDs stay (crds.keep); delete
them with kubectl delete crd peers.ecklink.io clusterexports.ecklink.io remoteclusters.ecklink.io.
--watch-namespace limits steps 1 and 2 to the agent's watched namespaces (default: all).
--dry-run prints the objects of steps 1 to 3 and changes nothing.`,
		Example: `  agentctl uninstall --context eu-west
  helm uninstall ecklink -n ecklink --kube-context eu-west
  agentctl uninstall --context eu-west`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return g.uninstall(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.namespaces, "watch-namespace", nil, "namespace of RemoteClusters and ClusterExports (repeatable; default all)")
	fl.StringVar(&f.leaseName, "lease-name", "ecklink-agent", "the agent's leader election Lease (the chart's leaderElection.leaseName)")
	fl.BoolVar(&f.force, "force", false, "remove the finalizers of objects the agent did not clean up within --timeout")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the objects that would be deleted")
	return cmd
}

// uninstallStep is one kind of ecklink object, deleted and awaited together.
type uninstallStep struct {
	kind string
	list func(ctx context.Context) ([]metav1.Object, error)
	del  func(ctx context.Context, ns, name string) error
	// strip removes the ecklink finalizer of one object.
	strip func(ctx context.Context, ns, name string) error
}

func (g *globals) uninstall(ctx context.Context, f *uninstallFlags) error {
	e, err := g.local()
	if err != nil {
		return err
	}
	namespaces := f.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	steps := []uninstallStep{
		resourceStep(e.crds.RemoteClusters(), "RemoteCluster", namespaces),
		resourceStep(e.crds.ClusterExports(), "ClusterExport", namespaces),
		resourceStep(e.crds.Peers(), "Peer", []string{e.namespace}),
	}
	if f.dryRun {
		var objs []any
		for _, s := range steps {
			l, err := s.list(ctx)
			if err != nil {
				return err
			}
			for _, o := range l {
				objs = append(objs, o)
			}
		}
		return g.printObjects(objs...)
	}
	var res uninstallResult
	for _, s := range steps {
		removed, forced, err := g.uninstallStep(ctx, s, f.force)
		res.Removed = append(res.Removed, removed...)
		res.Forced = append(res.Forced, forced...)
		if err != nil {
			return err
		}
	}
	if res.AgentRunning, err = agentRunning(ctx, e, f.leaseName); err != nil {
		return err
	}
	if !res.AgentRunning {
		if res.Purged, err = purgeAgentObjects(ctx, e, f.leaseName); err != nil {
			return err
		}
	}
	if res.Leftovers, err = leftovers(ctx, e, namespaces); err != nil {
		return err
	}
	return g.print(res, func(w io.Writer) error { return writeUninstall(w, e, res) })
}

// resourceStep makes the step of one ecklink kind.
func resourceStep[T any, P kube.Object[T]](c *kube.ResourceClient[T, P], kind string, namespaces []string) uninstallStep {
	return uninstallStep{
		kind: kind,
		list: func(ctx context.Context) ([]metav1.Object, error) {
			var out []metav1.Object
			for _, ns := range namespaces {
				l, err := c.List(ctx, ns, metav1.ListOptions{})
				if err != nil {
					return nil, fmt.Errorf("failed to list %ss: %w", kind, err)
				}
				for _, o := range l {
					out = append(out, o)
				}
			}
			return out, nil
		},
		del: func(ctx context.Context, ns, name string) error { return c.Delete(ctx, ns, name) },
		strip: func(ctx context.Context, ns, name string) error {
			o, err := c.Get(ctx, ns, name)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			o.SetFinalizers(slices.DeleteFunc(o.GetFinalizers(), func(f string) bool { return f == v1alpha1.Finalizer }))
			_, err = c.Update(ctx, o)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		},
	}
}

// uninstallStep deletes every object of a step and waits until the agent let them go; with
// force, it strips the finalizers of those that remain after --timeout.
func (g *globals) uninstallStep(ctx context.Context, s uninstallStep, force bool) (removed, forced []string, err error) {
	objs, err := s.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if o.GetDeletionTimestamp() == nil {
			if err := s.del(ctx, o.GetNamespace(), o.GetName()); err != nil && !apierrors.IsNotFound(err) {
				return nil, nil, fmt.Errorf("failed to delete %s %s/%s: %w", s.kind, o.GetNamespace(), o.GetName(), err)
			}
		}
		removed = append(removed, s.kind+" "+o.GetNamespace()+"/"+o.GetName())
	}
	if len(objs) > 0 {
		g.progress("deleted %d %s(s): the agent cleans up each before its finalizer lets it go", len(objs), s.kind)
	}
	start := time.Now()
	var remaining []metav1.Object
	err = g.poll(ctx, "the agent's cleanup of "+s.kind+"s", func(ctx context.Context) (bool, string, error) {
		if remaining, err = s.list(ctx); err != nil {
			return false, "", err
		}
		if len(remaining) == 0 {
			return true, "", nil
		}
		names := make([]string, 0, len(remaining))
		for _, o := range remaining {
			names = append(names, o.GetNamespace()+"/"+o.GetName())
		}
		return false, fmt.Sprintf("%d left (%s)%s", len(remaining), strings.Join(names, ", "),
			hint(start, "; is the agent running? (--force removes the finalizers without its cleanup)")), nil
	})
	if err == nil {
		return removed, nil, nil
	}
	if !force {
		return removed, nil, err
	}
	for _, o := range remaining {
		if err := s.strip(ctx, o.GetNamespace(), o.GetName()); err != nil {
			return removed, forced, fmt.Errorf("failed to remove the finalizer of %s %s/%s: %w", s.kind, o.GetNamespace(), o.GetName(), err)
		}
		forced = append(forced, s.kind+" "+o.GetNamespace()+"/"+o.GetName())
	}
	g.progress("removed the finalizer of %d %s(s) without the agent's cleanup", len(forced), s.kind)
	return removed, forced, nil
}

// agentRunning tells whether an agent is deployed in the namespace (the chart's Deployment with
// replicas) or holds its Lease (an agent run another way, e.g. outside the cluster).
func agentRunning(ctx context.Context, e *env, leaseName string) (bool, error) {
	ds, err := e.kube.AppsV1().Deployments(e.namespace).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		return false, fmt.Errorf("failed to list the agent's Deployments: %w", err)
	}
	for _, d := range ds.Items {
		if d.Spec.Replicas == nil || *d.Spec.Replicas > 0 {
			return true, nil
		}
	}
	l, err := e.kube.CoordinationV1().Leases(e.namespace).Get(ctx, leaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to read Lease %s: %w", leaseName, err)
	}
	if l.Spec.RenewTime == nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return false, nil
	}
	d := 15 * time.Second
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return time.Since(l.Spec.RenewTime.Time) < 2*d, nil
}

// purgeAgentObjects deletes the agent's own Secrets, ConfigMaps and Lease in its namespace.
func purgeAgentObjects(ctx context.Context, e *env, leaseName string) ([]string, error) {
	objs, err := listManaged(ctx, e, e.namespace)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		if err := o.delete(ctx, e); err != nil {
			return out, err
		}
		out = append(out, o.String())
	}
	err = e.kube.CoordinationV1().Leases(e.namespace).Delete(ctx, leaseName, metav1.DeleteOptions{})
	switch {
	case err == nil:
		out = append(out, "Lease "+e.namespace+"/"+leaseName)
	case !apierrors.IsNotFound(err):
		return out, fmt.Errorf("failed to delete Lease %s: %w", leaseName, err)
	}
	return out, nil
}

// leftovers lists the agent's Secrets and ConfigMaps outside its namespace: after the agent's
// cleanup none should remain; after --force they say what to check.
func leftovers(ctx context.Context, e *env, namespaces []string) ([]string, error) {
	var out []string
	for _, ns := range namespaces {
		objs, err := listManaged(ctx, e, ns)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.namespace != e.namespace {
				out = append(out, o.String())
			}
		}
	}
	return out, nil
}

// managedObject is a Secret or ConfigMap that carries the agent's label (managedSelector).
type managedObject struct{ kind, namespace, name string }

func (o managedObject) String() string { return o.kind + " " + o.namespace + "/" + o.name }

// listManaged lists the agent's Secrets, then its ConfigMaps, in namespace ns ("" for all).
func listManaged(ctx context.Context, e *env, ns string) ([]managedObject, error) {
	opts := metav1.ListOptions{LabelSelector: managedSelector}
	secrets, err := e.kube.CoreV1().Secrets(ns).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to list the agent's Secrets: %w", err)
	}
	cms, err := e.kube.CoreV1().ConfigMaps(ns).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to list the agent's ConfigMaps: %w", err)
	}
	out := make([]managedObject, 0, len(secrets.Items)+len(cms.Items))
	for _, s := range secrets.Items {
		out = append(out, managedObject{kind: "Secret", namespace: s.Namespace, name: s.Name})
	}
	for _, c := range cms.Items {
		out = append(out, managedObject{kind: "ConfigMap", namespace: c.Namespace, name: c.Name})
	}
	return out, nil
}

// delete deletes o; one already gone is not an error.
func (o managedObject) delete(ctx context.Context, e *env) error {
	core := e.kube.CoreV1()
	var err error
	if o.kind == "Secret" {
		err = core.Secrets(o.namespace).Delete(ctx, o.name, metav1.DeleteOptions{})
	} else {
		err = core.ConfigMaps(o.namespace).Delete(ctx, o.name, metav1.DeleteOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete %s: %w", o, err)
	}
	return nil
}

func writeUninstall(w io.Writer, e *env, res uninstallResult) error {
	fmt.Fprintf(w, "removed %d ecklink object(s) in %s with the agent's cleanup\n", len(res.Removed)-len(res.Forced), e.label())
	for _, f := range res.Forced {
		fmt.Fprintf(w, "  forced (finalizer removed, not cleaned up by the agent): %s\n", f)
	}
	if len(res.Forced) > 0 {
		fmt.Fprintln(w, "  check what the agent could not undo: cross-cluster API keys named ecklink-* in the exporting Elasticsearch,")
		fmt.Fprintln(w, "  cluster.remote.* settings and the ecklink entries of the Elasticsearch resources")
	}
	if res.AgentRunning {
		fmt.Fprintf(w, "the agent is still deployed in namespace %s: its keys and identity stay; run agentctl uninstall again after helm uninstall\n", e.namespace)
	} else {
		fmt.Fprintf(w, "purged %d object(s) of the agent in namespace %s\n", len(res.Purged), e.namespace)
	}
	for _, l := range res.Leftovers {
		fmt.Fprintf(w, "  left by the agent outside its namespace: %s\n", l)
	}
	return nil
}
