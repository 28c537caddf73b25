// Package cache holds the agent's informers: its CRDs, ECK's Elasticsearch resources, and the
// Secrets and ConfigMaps it reads or owns. Controllers read through it and register handlers,
// which must only enqueue work.
package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/kube"
)

// Labels that select what the agent watches.
const (
	// ManagedByLabel marks the agent's own Secrets and ConfigMaps.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on the agent's objects.
	ManagedByValue = "ecklink"
)

// Config configures the cache.
type Config struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Namespaces to watch; empty means all.
	Namespaces []string
	// AgentNamespace holds the Peers.
	AgentNamespace string
	Logger         hclog.Logger
}

// Cache is the set of informers.
type Cache struct {
	cfg Config
	// typed are the informers of core/v1 objects, started by Start (the per-resource
	// constructors, not a SharedInformerFactory, whose ForResource links every API group's
	// informers into the binary).
	typed    []cache.SharedIndexInformer
	dynamics []dynamicinformer.DynamicSharedInformerFactory
	agentDyn dynamicinformer.DynamicSharedInformerFactory

	eckSecrets, ownSecrets, ownConfigMaps []cache.SharedIndexInformer
	es, exports, remotes                  []cache.SharedIndexInformer
	peers                                 cache.SharedIndexInformer
	synced                                []cache.InformerSynced

	// The typed forms of the agent's own kinds, converted once per resourceVersion.
	typedExports *typed[v1alpha1.ClusterExport]
	typedRemotes *typed[v1alpha1.RemoteCluster]
	typedPeers   *typed[v1alpha1.Peer]
}

// New builds the informers; Start runs them.
func New(cfg Config) (*Cache, error) {
	if cfg.Kube == nil || cfg.Dynamic == nil || cfg.AgentNamespace == "" {
		return nil, fmt.Errorf("failed to create cache: Kube, Dynamic and AgentNamespace are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &Cache{cfg: cfg,
		typedExports: newTyped((*v1alpha1.ClusterExport).DeepCopy),
		typedRemotes: newTyped((*v1alpha1.RemoteCluster).DeepCopy),
		typedPeers:   newTyped((*v1alpha1.Peer).DeepCopy),
	}
	namespaces := cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		eckObjects := func(o *metav1.ListOptions) { o.LabelSelector = eck.ClusterNameLabel }
		own := func(o *metav1.ListOptions) { o.LabelSelector = ManagedByLabel + "=" + ManagedByValue }
		byNamespace := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
		eckSecrets := coreinformers.NewFilteredSecretInformer(cfg.Kube, ns, 0, byNamespace, eckObjects)
		ownSecrets := coreinformers.NewFilteredSecretInformer(cfg.Kube, ns, 0, byNamespace, own)
		ownConfigMaps := coreinformers.NewFilteredConfigMapInformer(cfg.Kube, ns, 0, byNamespace, own)
		dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, 0, ns, nil)
		c.typed = append(c.typed, eckSecrets, ownSecrets, ownConfigMaps)
		c.dynamics = append(c.dynamics, dyn)
		c.eckSecrets = append(c.eckSecrets, eckSecrets)
		c.ownSecrets = append(c.ownSecrets, ownSecrets)
		c.ownConfigMaps = append(c.ownConfigMaps, ownConfigMaps)
		c.es = append(c.es, dyn.ForResource(eck.ElasticsearchGVR).Informer())
		c.exports = append(c.exports, dyn.ForResource(v1alpha1.ClusterExportGVR).Informer())
		c.remotes = append(c.remotes, dyn.ForResource(v1alpha1.RemoteClusterGVR).Informer())
	}
	c.agentDyn = dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, 0, cfg.AgentNamespace, nil)
	c.peers = c.agentDyn.ForResource(v1alpha1.PeerGVR).Informer()
	for _, group := range [][]cache.SharedIndexInformer{c.eckSecrets, c.ownSecrets, c.ownConfigMaps, c.es, c.exports, c.remotes, {c.peers}} {
		for _, inf := range group {
			c.synced = append(c.synced, inf.HasSynced)
		}
	}
	for _, group := range [][]cache.SharedIndexInformer{c.eckSecrets, c.ownSecrets, c.ownConfigMaps, c.es, c.exports, {c.peers}} {
		for _, inf := range group {
			if err := inf.SetTransform(stripManagedFields); err != nil {
				return nil, fmt.Errorf("failed to create cache: %w", err)
			}
		}
	}
	for _, inf := range c.remotes {
		if err := inf.SetTransform(typedRemoteCluster); err != nil {
			return nil, fmt.Errorf("failed to create cache: %w", err)
		}
	}
	for _, inf := range c.remotes {
		if err := inf.AddIndexers(cache.Indexers{byElasticsearch: remoteClusterElasticsearch}); err != nil {
			return nil, fmt.Errorf("failed to create cache: %w", err)
		}
	}
	return c, nil
}

// Start runs the informers until ctx ends and waits for their first sync.
func (c *Cache) Start(ctx context.Context) error {
	for _, inf := range c.typed {
		go inf.Run(ctx.Done())
	}
	for _, f := range c.dynamics {
		f.Start(ctx.Done())
	}
	c.agentDyn.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), c.synced...) {
		return fmt.Errorf("failed to sync informers: %w", syncCtx.Err())
	}
	return nil
}

// Handler receives every change of one kind of object (old is nil on add, new is nil on delete).
type Handler func(old, new any)

func register(infs []cache.SharedIndexInformer, h Handler) error {
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { h(nil, o) },
			UpdateFunc: func(o, n any) { h(o, n) },
			DeleteFunc: func(o any) {
				if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				h(o, nil)
			},
		}); err != nil {
			return fmt.Errorf("failed to add event handler: %w", err)
		}
	}
	return nil
}

// OnElasticsearch registers h for Elasticsearch resources (*unstructured.Unstructured).
func (c *Cache) OnElasticsearch(h Handler) error { return register(c.es, h) }

// OnClusterExport registers h for ClusterExports (*unstructured.Unstructured).
func (c *Cache) OnClusterExport(h Handler) error { return register(c.exports, h) }

// OnRemoteCluster registers h for RemoteClusters (*v1alpha1.RemoteCluster; do not modify them).
func (c *Cache) OnRemoteCluster(h Handler) error { return register(c.remotes, h) }

// OnPeer registers h for Peers (*unstructured.Unstructured).
func (c *Cache) OnPeer(h Handler) error { return register([]cache.SharedIndexInformer{c.peers}, h) }

// OnECKSecret registers h for ECK's Secrets: h gets the Secret that changed, as it is now, or as
// it was last seen when it is deleted.
func (c *Cache) OnECKSecret(h func(*corev1.Secret)) error {
	return register(c.eckSecrets, secretOf(h))
}

// secretOf is a Handler that calls h with the Secret of a change: the new one, or the old one
// on delete; nothing for an object that is no Secret.
func secretOf(h func(*corev1.Secret)) Handler {
	return func(old, new any) {
		s, ok := new.(*corev1.Secret)
		if !ok {
			s, ok = old.(*corev1.Secret)
		}
		if ok {
			h(s)
		}
	}
}

// OnOwnObject registers h for the agent's own Secrets and ConfigMaps.
func (c *Cache) OnOwnObject(h Handler) error {
	if err := register(c.ownSecrets, h); err != nil {
		return err
	}
	return register(c.ownConfigMaps, h)
}

func getByKey(infs []cache.SharedIndexInformer, ns, name string) (any, bool) {
	for _, inf := range infs {
		if obj, ok, err := inf.GetIndexer().GetByKey(ns + "/" + name); err == nil && ok {
			return obj, true
		}
	}
	return nil, false
}

// getAs returns the object named ns/name in infs as a T (the kind those informers hold).
func getAs[T any](infs []cache.SharedIndexInformer, ns, name string) (T, bool) {
	obj, ok := getByKey(infs, ns, name)
	if !ok {
		var zero T
		return zero, false
	}
	t, ok := obj.(T)
	return t, ok
}

func listAll(infs []cache.SharedIndexInformer) []any {
	var out []any
	for _, inf := range infs {
		out = append(out, inf.GetIndexer().List()...)
	}
	return out
}

// Elasticsearch returns an Elasticsearch resource (do not modify it).
func (c *Cache) Elasticsearch(ns, name string) (*unstructured.Unstructured, bool) {
	return getAs[*unstructured.Unstructured](c.es, ns, name)
}

// ClusterExport returns a ClusterExport.
func (c *Cache) ClusterExport(ns, name string) (*v1alpha1.ClusterExport, bool) {
	obj, ok := getByKey(c.exports, ns, name)
	if !ok {
		return nil, false
	}
	return c.typedExports.get(obj)
}

// ClusterExportSpec returns a ClusterExport without its status (a copy of its metadata and
// spec), for the many reads that need nothing else: a link's pass, the exporter's gate. The
// status lists up to 100 links, and copying it on each of those reads was a third of the
// exporting agent's idle CPU at 1,000 links (make bench -profile).
func (c *Cache) ClusterExportSpec(ns, name string) (*v1alpha1.ClusterExport, bool) {
	obj, ok := getByKey(c.exports, ns, name)
	if !ok {
		return nil, false
	}
	return c.typedExports.getWith(obj, func(e *v1alpha1.ClusterExport) *v1alpha1.ClusterExport {
		out := &v1alpha1.ClusterExport{TypeMeta: e.TypeMeta}
		e.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
		e.Spec.DeepCopyInto(&out.Spec)
		return out
	})
}

// ClusterExports lists every ClusterExport.
func (c *Cache) ClusterExports() []*v1alpha1.ClusterExport {
	return c.typedExports.list(listAll(c.exports))
}

// RemoteClustersShared lists every RemoteCluster as the informer holds it, without a copy (do
// not modify them): for the readers that change nothing, such as queueing every Elasticsearch
// on a resync, the user controller's roles and the prober's round. Copying 1,000 RemoteClusters
// for each of those every 30 s was most of an idle agent's garbage.
func (c *Cache) RemoteClustersShared() []*v1alpha1.RemoteCluster {
	return shared(listAll(c.remotes))
}

// RemoteClustersSharedOf lists the RemoteClusters of one local Elasticsearch
// (spec.elasticsearchRef) from an index, as the informer holds them (RemoteClustersShared: do
// not modify them): a pass over one Elasticsearch costs its own links, not every link's, and
// copies only what it writes.
func (c *Cache) RemoteClustersSharedOf(ns, es string) []*v1alpha1.RemoteCluster {
	return shared(c.remoteClustersOf(ns, es))
}

func (c *Cache) remoteClustersOf(ns, es string) []any {
	var objs []any
	for _, inf := range c.remotes {
		found, _ := inf.GetIndexer().ByIndex(byElasticsearch, ns+"/"+es)
		objs = append(objs, found...)
	}
	return objs
}

// shared returns the typed RemoteClusters among objs as they are; one that did not convert
// (typedRemoteCluster) stays unstructured and is skipped, as by the typed reads.
func shared(objs []any) []*v1alpha1.RemoteCluster {
	out := make([]*v1alpha1.RemoteCluster, 0, len(objs))
	for _, o := range objs {
		if rc, ok := o.(*v1alpha1.RemoteCluster); ok {
			out = append(out, rc)
		}
	}
	return out
}

// byElasticsearch indexes RemoteClusters by "namespace/name" of their local Elasticsearch.
const byElasticsearch = "elasticsearch"

func remoteClusterElasticsearch(obj any) ([]string, error) {
	ref, ok := ElasticsearchRef(obj)
	if !ok {
		return nil, nil
	}
	return []string{ref.String()}, nil
}

// typedRemoteCluster is the RemoteCluster informers' transform: they keep the typed object
// (without managedFields) instead of the unstructured one, converted once per version as it
// arrives. RemoteClusters are the kind an agent holds by the thousand, and an unstructured object
// (nested maps of interfaces) costs several times the memory of the typed one, which the halves
// read anyway. An object that does not convert stays unstructured (and is skipped by the typed
// reads, as before).
func typedRemoteCluster(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return stripManagedFields(obj)
	}
	u.SetManagedFields(nil)
	rc, err := kube.FromUnstructured[v1alpha1.RemoteCluster](u)
	if err != nil {
		return u, nil
	}
	return rc, nil
}

// stripManagedFields drops metadata.managedFields from what the informers keep: nothing in the
// agent reads them, they are often the largest part of an object, and every copy would pay for
// them. An update sent from a cached object omits them, which leaves them as they are.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Peers lists every Peer.
func (c *Cache) Peers() []*v1alpha1.Peer {
	return c.typedPeers.list(c.peers.GetIndexer().List())
}

// HasPeer reports whether the Peer for environment exists, without a copy: for the passes that
// only check that a link's peer is still there (one check per link per pass).
func (c *Cache) HasPeer(environment string) bool {
	_, ok := c.peer(environment, func(p *v1alpha1.Peer) *v1alpha1.Peer { return p }) // as Peer: one that does not convert is not there
	return ok
}

// Peer returns the Peer of an environment (Peers are named after their environment).
func (c *Cache) Peer(environment string) (*v1alpha1.Peer, bool) {
	return c.peer(environment, (*v1alpha1.Peer).DeepCopy)
}

// peer is the typed Peer of environment, handed out through cp.
func (c *Cache) peer(environment string, cp func(*v1alpha1.Peer) *v1alpha1.Peer) (*v1alpha1.Peer, bool) {
	obj, ok, err := c.peers.GetIndexer().GetByKey(c.cfg.AgentNamespace + "/" + environment)
	if err != nil || !ok {
		return nil, false
	}
	return c.typedPeers.getWith(obj, cp)
}

// ECKSecret returns a Secret ECK created.
func (c *Cache) ECKSecret(ns, name string) (*corev1.Secret, bool) {
	return getAs[*corev1.Secret](c.eckSecrets, ns, name)
}

// OwnSecret returns a Secret the agent owns.
func (c *Cache) OwnSecret(ns, name string) (*corev1.Secret, bool) {
	return getAs[*corev1.Secret](c.ownSecrets, ns, name)
}

// OwnConfigMap returns a ConfigMap the agent owns.
func (c *Cache) OwnConfigMap(ns, name string) (*corev1.ConfigMap, bool) {
	return getAs[*corev1.ConfigMap](c.ownConfigMaps, ns, name)
}

// OwnConfigMaps lists the agent's ConfigMaps matching a selector.
func (c *Cache) OwnConfigMaps(sel labels.Selector) []*corev1.ConfigMap {
	var out []*corev1.ConfigMap
	for _, inf := range c.ownConfigMaps {
		l := listerscorev1.NewConfigMapLister(inf.GetIndexer())
		items, _ := l.List(sel)
		out = append(out, items...)
	}
	return out
}
