package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// Clientset is the typed Kubernetes client of the agent: the two API groups it uses, core/v1
// (Secrets, ConfigMaps, Pods, Events) and coordination.k8s.io/v1 (its Lease), behind
// kubernetes.Interface, which the agent's packages and their fakes take. client-go's
// kubernetes.NewForConfig builds a client of every API group, and with it links every group's
// client and apply configurations and the discovery client into the binary: 22 MB of the agent
// with the informer factory it fed (measured: 93 -> 71 MB), much of it paged in at run time.
// (The core group's apply configurations and the OpenAPI parser they use stay linked.) The other groups' methods are not served:
// calling one panics (a nil interface). agent/structure_test.go refuses a call of another group
// in the agent's packages.
type Clientset struct {
	kubernetes.Interface // nil: only the groups below are served
	core                 corev1.CoreV1Interface
	coordination         coordinationv1.CoordinationV1Interface
}

// NewClientset returns the agent's typed client for c, one HTTP client and one rate limiter
// shared by its groups, as kubernetes.NewForConfig makes them.
func NewClientset(c *rest.Config) (*Clientset, error) {
	cfg := *c
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("failed to create kubernetes client: burst is required with a rate limit")
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	httpClient, err := rest.HTTPClientFor(&cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create kubernetes client: %w", err)
	}
	core, err := corev1.NewForConfigAndClient(&cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("failed to create kubernetes client: %w", err)
	}
	coordination, err := coordinationv1.NewForConfigAndClient(&cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("failed to create kubernetes client: %w", err)
	}
	return &Clientset{core: core, coordination: coordination}, nil
}

// CoreV1 is the core/v1 client.
func (c *Clientset) CoreV1() corev1.CoreV1Interface { return c.core }

// CoordinationV1 is the coordination.k8s.io/v1 client.
func (c *Clientset) CoordinationV1() coordinationv1.CoordinationV1Interface { return c.coordination }
