package ctl

import (
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

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
func (e *env) label() string {
	if e.context == "" {
		return "the current context"
	}
	return "context " + e.context
}

// connect builds the clients of one environment. kubeconfig "" follows $KUBECONFIG, then
// ~/.kube/config, as kubectl does.
func connect(kubeconfig, context, namespace string) (*env, error) {
	cfg, err := kube.RESTConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "agentctl/" + version.Version
	cfg.Timeout = 30 * time.Second
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

// local returns the environment of --context.
func (g *globals) local() (*env, error) {
	if g.connect != nil {
		return g.connect(g.kubeconfig, g.context, g.namespace)
	}
	return connect(g.kubeconfig, g.context, g.namespace)
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
		kc = g.kubeconfig
	}
	if ns == "" {
		ns = g.namespace
	}
	if g.connect != nil {
		return g.connect(kc, p.context, ns)
	}
	return connect(kc, p.context, ns)
}
