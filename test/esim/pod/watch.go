package pod

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

var elasticsearchGVR = schema.GroupVersionResource{Group: "elasticsearch.k8s.elastic.co", Version: "v1", Resource: "elasticsearches"}

// esState holds the latest Elasticsearch resource.
type esState struct {
	mu  sync.Mutex
	obj *unstructured.Unstructured
}

func (s *esState) set(o *unstructured.Unstructured) {
	s.mu.Lock()
	s.obj = o
	s.mu.Unlock()
}

func (s *esState) get() *unstructured.Unstructured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.obj
}

// watch starts informers on the namespace's Secrets and ConfigMaps and on the Elasticsearch
// resource, and waits for their first sync.
func (p *Pod) watch(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(p.opts.Kube, 0, informers.WithNamespace(p.opts.Namespace))
	synced := false
	var syncMu sync.Mutex
	at := func() time.Time {
		syncMu.Lock()
		defer syncMu.Unlock()
		if !synced {
			// Present when the pod started: visible at once.
			return time.Time{}
		}
		return time.Now()
	}
	secureName := p.opts.Name + "-es-secure-settings"
	onSecret := func(obj any, deleted bool) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				s, _ = t.Obj.(*corev1.Secret)
			}
		}
		if s == nil {
			return
		}
		p.view.record(objectKey("secret", s.Name), at(), s.Data, deleted)
		if s.Name == secureName {
			p.mu.Lock()
			if deleted {
				p.secureData = nil
			} else {
				p.secureData = s.Data
			}
			p.mu.Unlock()
		}
	}
	onConfigMap := func(obj any, deleted bool) {
		c, ok := obj.(*corev1.ConfigMap)
		if !ok {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				c, _ = t.Obj.(*corev1.ConfigMap)
			}
		}
		if c == nil {
			return
		}
		data := make(map[string][]byte, len(c.Data)+len(c.BinaryData))
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
		for k, v := range c.BinaryData {
			data[k] = v
		}
		p.view.record(objectKey("configMap", c.Name), at(), data, deleted)
	}
	if _, err := factory.Core().V1().Secrets().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { onSecret(o, false) },
		UpdateFunc: func(_, o any) { onSecret(o, false) },
		DeleteFunc: func(o any) { onSecret(o, true) },
	}); err != nil {
		return fmt.Errorf("failed to watch secrets: %w", err)
	}
	if _, err := factory.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { onConfigMap(o, false) },
		UpdateFunc: func(_, o any) { onConfigMap(o, false) },
		DeleteFunc: func(o any) { onConfigMap(o, true) },
	}); err != nil {
		return fmt.Errorf("failed to watch configmaps: %w", err)
	}
	dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(p.opts.Dynamic, 0, p.opts.Namespace, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.opts.Name).String()
	})
	onES := func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			p.esObj.set(u)
		}
	}
	if _, err := dyn.ForResource(elasticsearchGVR).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onES,
		UpdateFunc: func(_, o any) { onES(o) },
		DeleteFunc: func(any) { p.esObj.set(nil) },
	}); err != nil {
		return fmt.Errorf("failed to watch elasticsearch: %w", err)
	}
	factory.Start(ctx.Done())
	dyn.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, ok := range factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("failed to sync informers for %s/%s", p.opts.Namespace, p.opts.Name)
		}
	}
	for _, ok := range dyn.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("failed to sync elasticsearch informer for %s/%s", p.opts.Namespace, p.opts.Name)
		}
	}
	syncMu.Lock()
	synced = true
	syncMu.Unlock()
	return nil
}
