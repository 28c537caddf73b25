// Package fakehalf builds what a half of the agent (the exporter, the importer) runs on in the
// agent's tests: fake Kubernetes clients, the informer cache over them, an Event recorder and
// metrics. Only _test.go files import it; the agent itself never does.
package fakehalf

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/pairing"
)

// AgentNamespace is the namespace of the agent (and of its Peers).
const AgentNamespace = "ecklink"

// Config is what New builds.
type Config struct {
	// Environment is this agent's environment name.
	Environment string
	// Peers are the environments paired with this one: a Peer each, dialled at
	// <peer>.example:9400.
	Peers []string
	// Objects are objects of the agent's kinds (fakekube.NewDynamic).
	Objects []runtime.Object
	// Elasticsearch are ECK's Elasticsearch resources (fakekube.NewDynamic).
	Elasticsearch []*unstructured.Unstructured
	// Kube are the core objects of the typed client.
	Kube []runtime.Object
	// Now is the half's clock; time.Now if nil.
	Now func() time.Time
	// Events is how many Events the recorder holds; 100 if 0.
	Events int
}

// Half is the fake cluster a half runs on.
type Half struct {
	Kube    *fake.Clientset
	Dynamic *dynamicfake.FakeDynamicClient
	// CRDs writes the agent's kinds, recording the condition transitions in Events.
	CRDs  *kube.Client
	Cache *cache.Cache
	// Events are the Events the half recorded.
	Events   *record.FakeRecorder
	Recorder *kube.Recorder
	Metrics  *metrics.Metrics
	cfg      Config
}

// Make builds the Half of cfg; the cache is not started (Start).
func Make(cfg Config) (*Half, error) {
	objs := make([]runtime.Object, 0, len(cfg.Peers)+len(cfg.Objects))
	for _, peer := range cfg.Peers {
		objs = append(objs, pairing.NewPeer(AgentNamespace, peer, []byte("bundle"), []string{peer + ".example:9400"}, true, ""))
	}
	objs = append(objs, cfg.Objects...)
	dyn, err := fakekube.NewDynamic(objs, cfg.Elasticsearch...)
	if err != nil {
		return nil, err
	}
	if cfg.Events == 0 {
		cfg.Events = 100
	}
	h := &Half{Kube: fake.NewClientset(cfg.Kube...), Dynamic: dyn, Events: record.NewFakeRecorder(cfg.Events), Metrics: metrics.New(), cfg: cfg}
	h.Recorder = kube.NewRecorderFor(h.Events)
	if h.CRDs, err = kube.NewClient(kube.ClientConfig{Dynamic: dyn, Recorder: h.Recorder}); err != nil {
		return nil, err
	}
	if h.Cache, err = cache.New(cache.Config{Kube: h.Kube, Dynamic: dyn, AgentNamespace: AgentNamespace, Logger: hclog.NewNullLogger()}); err != nil {
		return nil, err
	}
	return h, nil
}

// New is Make failing tb on an error.
func New(tb testing.TB, cfg Config) *Half {
	tb.Helper()
	h, err := Make(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// Deps are the halves.Deps over h, reading Elasticsearch through es.
func (h *Half) Deps(es halves.Clients) halves.Deps {
	return halves.Deps{Environment: h.cfg.Environment, Cache: h.Cache, Kube: h.Kube, Dynamic: h.Dynamic, CRDs: h.CRDs,
		Elastic: es, Recorder: h.Recorder, Metrics: h.Metrics, Logger: hclog.NewNullLogger(), Now: h.cfg.Now}
}

// Start starts the cache until tb ends; the half's informer handlers must be registered first.
func (h *Half) Start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	if err := h.Cache.Start(ctx); err != nil {
		tb.Fatal(err)
	}
}

// ConfigMap is ConfigMap ns/name as the API server holds it; nil when there is none.
func (h *Half) ConfigMap(tb testing.TB, ns, name string) *corev1.ConfigMap {
	tb.Helper()
	cm, err := h.Kube.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return cm
}

// Elasticsearch is the Elasticsearch resource ns/name as the API server holds it.
func (h *Half) Elasticsearch(tb testing.TB, ns, name string) *unstructured.Unstructured {
	tb.Helper()
	es, err := h.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return es
}
