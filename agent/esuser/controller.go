package esuser

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/task"
	"github.com/ecklink/ecklink/internal/worker"
)

// Cache is what the controller reads: the Elasticsearch resources and what uses them.
type Cache interface {
	Elasticsearch(ns, name string) (*unstructured.Unstructured, bool)
	ClusterExports() []*v1alpha1.ClusterExport
	// RemoteClustersShared lists the RemoteClusters as the informer holds them (the controller
	// reads their metadata and spec, and changes nothing).
	RemoteClustersShared() []*v1alpha1.RemoteCluster
	// RemoteClustersSharedOf lists the RemoteClusters of one Elasticsearch (an index: a
	// reconcile costs that Elasticsearch's links, not every link's), as the informer holds them.
	RemoteClustersSharedOf(ns, es string) []*v1alpha1.RemoteCluster
	OnElasticsearch(h cache.Handler) error
	OnClusterExport(h cache.Handler) error
	OnRemoteCluster(h cache.Handler) error
	OnOwnObject(h cache.Handler) error
	// OwnSecret returns a Secret with the agent's label, as last seen (to skip API calls when
	// nothing changes).
	OwnSecret(ns, name string) (*corev1.Secret, bool)
}

// Config configures the Controller.
type Config struct {
	Cache   Cache
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Logger  hclog.Logger
	// Resync re-checks every Elasticsearch this often (default 30s).
	Resync time.Duration
	// NewPassword generates a user's password; a random one when nil.
	NewPassword func() (string, error)
}

// Controller keeps the agent's user of each Elasticsearch as its use needs it.
type Controller struct {
	cfg    Config
	log    hclog.Logger
	editor *wiring.Editor
	queue  workqueue.TypedRateLimitingInterface[types.NamespacedName]
}

// New checks cfg and registers the controller's handlers on the cache.
func New(cfg Config) (*Controller, error) {
	if cfg.Cache == nil || cfg.Kube == nil || cfg.Dynamic == nil {
		return nil, errors.New("failed to create the elasticsearch user controller: Cache, Kube and Dynamic are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.NewPassword == nil {
		cfg.NewPassword = randomPassword
	}
	log := cfg.Logger.Named("esuser")
	c := &Controller{cfg: cfg, log: log, editor: wiring.NewEditor(cfg.Dynamic, log),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "esuser"})}
	byRef := func(o any) {
		if ref, ok := cache.ElasticsearchRef(o); ok {
			c.queue.Add(ref)
		}
	}
	// The uses read no status: the status writes of the halves (one per link and change) cost
	// nothing here.
	if err := cfg.Cache.OnClusterExport(cache.SpecChanges(byRef)); err != nil {
		return nil, err
	}
	if err := cfg.Cache.OnRemoteCluster(cache.SpecChanges(byRef)); err != nil {
		return nil, err
	}
	if err := cfg.Cache.OnElasticsearch(cache.Both(func(o any) {
		if key, ok := cache.Key(o); ok {
			c.queue.Add(key)
		}
	})); err != nil {
		return nil, err
	}
	if err := cfg.Cache.OnOwnObject(cache.Both(func(o any) {
		if m, ok := o.(interface {
			GetLabels() map[string]string
			GetNamespace() string
		}); ok && m.GetLabels()[labelUser] != "" {
			c.queue.Add(types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetLabels()[labelUser]})
		}
	})); err != nil {
		return nil, err
	}
	return c, nil
}

// Run drains the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	go task.Every(ctx, c.cfg.Resync, c.enqueueAll)
	c.enqueueAll()
	worker.Run(ctx, c.queue, 1, c.process)
	return ctx.Err()
}

// process reconciles key and retries it with backoff after a failure.
func (c *Controller) process(ctx context.Context, key types.NamespacedName) {
	if err := c.reconcile(ctx, key); err != nil {
		c.log.Warn("failed to reconcile the agent's user, will retry", "elasticsearch", key.String(), "error", err)
		c.queue.AddRateLimited(key)
	} else {
		c.queue.Forget(key)
	}
}

func (c *Controller) enqueueAll() {
	for key := range c.uses() {
		c.queue.Add(key)
	}
}

// use is what the links of one Elasticsearch need of the agent's user.
type use struct {
	roles []string    // sorted
	mode  wiring.Mode // the RemoteClusters' modes joined (wiring.Mode.Join)
}

// uses derives, from every ClusterExport and RemoteCluster (deleting ones too: their finalizers
// still call Elasticsearch), the roles each Elasticsearch's user needs.
func (c *Controller) uses() map[types.NamespacedName]use {
	out := uses{}
	for _, exp := range c.cfg.Cache.ClusterExports() {
		out.addExport(exp)
	}
	for _, rc := range c.cfg.Cache.RemoteClustersShared() {
		out.addRemote(rc)
	}
	return out
}

// useOf is the use of one Elasticsearch, from its own ClusterExports and RemoteClusters.
func (c *Controller) useOf(key types.NamespacedName) (use, bool) {
	out := uses{}
	for _, exp := range c.cfg.Cache.ClusterExports() {
		if exp.Namespace == key.Namespace && exp.Spec.ElasticsearchRef.Name == key.Name {
			out.addExport(exp)
		}
	}
	for _, rc := range c.cfg.Cache.RemoteClustersSharedOf(key.Namespace, key.Name) {
		out.addRemote(rc)
	}
	u, ok := out[key]
	return u, ok
}

type uses map[types.NamespacedName]use

func (out uses) add(key types.NamespacedName, role string, mode wiring.Mode) {
	u := out[key]
	if !slices.Contains(u.roles, role) {
		u.roles = append(u.roles, role)
		slices.Sort(u.roles)
	}
	u.mode = u.mode.Join(mode)
	out[key] = u
}

func (out uses) addExport(exp *v1alpha1.ClusterExport) {
	// A certificate-model export needs the keys role too: its links invalidate the keys of an
	// earlier API-key answer, and its finalizer those issued under it.
	key := types.NamespacedName{Namespace: exp.Namespace, Name: exp.Spec.ElasticsearchRef.Name}
	out.add(key, RoleAPIKeys, wiring.Managed)
	out.add(key, RoleSettings, wiring.Managed) // the signing CA settings of strong identity
}

func (out uses) addRemote(rc *v1alpha1.RemoteCluster) {
	mode := wiring.Managed // a deleting RemoteCluster no longer holds the resource back
	if rc.DeletionTimestamp == nil {
		mode = wiring.ParseMode(rc.Spec.Wiring)
	}
	out.add(types.NamespacedName{Namespace: rc.Namespace, Name: rc.Spec.ElasticsearchRef.Name}, RoleSettings, mode)
}

// reconcile brings one Elasticsearch's user to what its use needs: the Secrets first, then the
// wiring; on the way out, the wiring first, then the Secrets (ECK only logs a Secret it cannot
// find, but the order keeps the resource from naming a missing Secret).
func (c *Controller) reconcile(ctx context.Context, key types.NamespacedName) error {
	u, needed := c.useOf(key)
	es, found := c.cfg.Cache.Elasticsearch(key.Namespace, key.Name)
	if !needed {
		if !c.hasSecrets(key) && (!found || !wiringRecorded(es)) {
			return nil // the common case: an Elasticsearch the agent never worked with
		}
		if found && wiringRecorded(es) {
			if err := c.unwire(ctx, es); err != nil {
				return err
			}
		}
		return c.deleteSecrets(ctx, key)
	}
	if err := c.ensureSecrets(ctx, key, u.roles); err != nil {
		return err
	}
	if !found || !u.mode.Edits() {
		// Not ours to edit: the RemoteCluster's snippet names the Secrets (see Auth).
		return nil
	}
	return c.wire(ctx, es)
}
