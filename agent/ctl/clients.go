package ctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/internal/version"
)

// env is one environment as agentctl reaches it: through a kubeconfig context.
type env struct {
	// context is the kubeconfig context ("" is the current one).
	context   string
	namespace string
	kube      kubernetes.Interface
	crds      *kube.Client
}

// label names the environment's context in messages.
func (e *env) label() string { return contextLabel(e.context) }

// connect builds the clients of one environment from kubectl-style connection flags:
// --kubeconfig "" follows $KUBECONFIG, then ~/.kube/config, as kubectl does.
func connect(flags genericclioptions.RESTClientGetter, context, namespace string) (*env, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig: %w", err)
	}
	cfg.UserAgent = "agentctl/" + version.Version
	if cfg.Timeout == 0 {
		// --request-timeout 0 (the default) still bounds each request: waits poll instead.
		cfg.Timeout = 30 * time.Second
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create dynamic client: %w", err)
	}
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: dyn})
	if err != nil {
		return nil, err
	}
	return &env{context: context, namespace: namespace, kube: kc, crds: crds}, nil
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

// local returns the environment of --context.
func (g *globals) local() (*env, error) {
	kubeconfig, context, namespace := ptr.Deref(g.kube.KubeConfig, ""), ptr.Deref(g.kube.Context, ""), ptr.Deref(g.kube.Namespace, defaultAgentNamespace)
	g.debug(4, "connecting to %s (kubeconfig %q), agent namespace %s", contextLabel(context), kubeconfig, namespace)
	if g.connect != nil {
		return g.connect(kubeconfig, context, namespace)
	}
	return connect(g.kube, context, namespace)
}

// peerFlags select the other environment of pair, unpair and doctor.
type peerFlags struct {
	context    string
	kubeconfig string
	namespace  string
}

// peer returns the environment of --peer-context, nil when it is not set.
func (g *globals) peer(p peerFlags) (*env, error) {
	if p.context == "" {
		return nil, nil
	}
	kc, ns := p.kubeconfig, p.namespace
	if kc == "" {
		kc = ptr.Deref(g.kube.KubeConfig, "")
	}
	if ns == "" {
		ns = ptr.Deref(g.kube.Namespace, defaultAgentNamespace)
	}
	g.debug(4, "connecting to peer %s (kubeconfig %q), agent namespace %s", contextLabel(p.context), kc, ns)
	if g.connect != nil {
		return g.connect(kc, p.context, ns)
	}
	return connect(peerKubeFlags(g.kube, kc, p.context), p.context, ns)
}

func contextLabel(c string) string {
	if c == "" {
		return "the current context"
	}
	return "context " + c
}
