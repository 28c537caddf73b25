package pod

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// The kubelet, as far as mounted ConfigMaps and Secrets go. Kubernetes documents that a changed
// ConfigMap or Secret reaches a pod's files "as long as the kubelet sync period + cache
// propagation delay": the kubelet re-mounts a pod's ConfigMap and Secret volumes when it syncs
// the pod, which it does every --sync-frequency (1 minute by default), each pod worker spreading
// its resyncs with a jitter factor of 0.5 (pod_workers.go, workerResyncIntervalJitterFactor), and
// it reads the objects through a cache whose delay depends on
// configMapAndSecretChangeDetectionStrategy (Watch, the default: about the watch's latency; TTL:
// up to the TTL). A pod update also syncs the pod at once, which is what ECK's
// annotation.MarkPodsAsUpdated and ecklink's ecklink.io/updated-at rely on. A pod that starts
// mounts what the objects hold then.
//
// The model: the pod sees an object as it was at the last sync, less the cache delay; syncs come
// every SyncPeriod × (1 + Jitter × rand), and at once when the pod object's annotations change.
// No kubelet runs in the test bed, so the pod object is created here, with the labels ECK gives
// Elasticsearch pods, and stays Pending (no node); the agent patches it as it would a real one.

// Kubelet configures the model.
type Kubelet struct {
	// SyncPeriod is the kubelet's --sync-frequency. Default 1 minute, as the kubelet's.
	SyncPeriod time.Duration
	// Jitter is the factor of SyncPeriod added at random to each resync. Default 0.5, as the
	// kubelet's; negative for none.
	Jitter float64
	// CacheDelay is the delay of the kubelet's ConfigMap and Secret cache (0 with the Watch
	// strategy, the default).
	CacheDelay time.Duration
}

func (k *Kubelet) setDefaults() {
	if k.SyncPeriod == 0 {
		k.SyncPeriod = time.Minute
	}
	if k.Jitter == 0 {
		k.Jitter = 0.5
	}
	k.Jitter = max(k.Jitter, 0)
}

// kubeletState tracks the pod's syncs.
type kubeletState struct {
	mu     sync.Mutex
	cfg    Kubelet
	synced time.Time // the last sync
	next   time.Time
	syncs  int
}

func newKubeletState(cfg Kubelet, now time.Time) *kubeletState {
	cfg.setDefaults()
	k := &kubeletState{cfg: cfg}
	k.syncLocked(now)
	return k
}

func (k *kubeletState) syncLocked(now time.Time) {
	k.synced = now
	k.syncs++
	k.next = now.Add(k.cfg.SyncPeriod + time.Duration(rand.Float64()*k.cfg.Jitter*float64(k.cfg.SyncPeriod)))
}

// tick syncs when the period is due.
func (k *kubeletState) tick(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !now.Before(k.next) {
		k.syncLocked(now)
	}
}

// syncNow syncs the pod now (pod update, pod start).
func (k *kubeletState) syncNow(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.syncLocked(now)
}

// horizon is the latest write the pod's files show.
func (k *kubeletState) horizon() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.synced.Add(-k.cfg.CacheDelay)
}

// Syncs returns how many times the modelled kubelet synced the pod's volumes.
func (p *Pod) Syncs() int {
	p.kubelet.mu.Lock()
	defer p.kubelet.mu.Unlock()
	return p.kubelet.syncs
}

// podLabels are the labels ECK sets on the pods of an Elasticsearch node set.
func (p *Pod) podLabels(nodeSet string) map[string]string {
	return map[string]string{
		"common.k8s.elastic.co/type":                    "elasticsearch",
		"elasticsearch.k8s.elastic.co/cluster-name":     p.opts.Name,
		"elasticsearch.k8s.elastic.co/statefulset-name": p.opts.Name + "-es-" + nodeSet,
	}
}

// watchPodObject creates the pod object (and the namespace's default ServiceAccount, which the
// API server's admission requires and no controller manager creates here), and syncs the
// volumes at once when its annotations change, as the kubelet does on a pod update.
func (p *Pod) watchPodObject(ctx context.Context, nodeSet string) error {
	name := p.podName(nodeSet)
	if err := p.ensurePodObject(ctx, name, nodeSet); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(p.opts.Kube, 0, informers.WithNamespace(p.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(o, n any) {
			op, ok1 := o.(*corev1.Pod)
			np, ok2 := n.(*corev1.Pod)
			if ok1 && ok2 && !maps.Equal(op.Annotations, np.Annotations) {
				p.kubelet.syncNow(time.Now())
				p.log.Debug("pod updated, volumes synced")
			}
		},
		DeleteFunc: func(any) {
			// Gone (ECK replaces pods): the next one is created with the same name.
			go func() { _ = p.ensurePodObject(ctx, name, nodeSet) }()
		},
	}); err != nil {
		return fmt.Errorf("failed to watch pod %s: %w", name, err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return nil
}

func (p *Pod) ensurePodObject(ctx context.Context, name, nodeSet string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: p.opts.Namespace}}
	if _, err := p.opts.Kube.CoreV1().ServiceAccounts(p.opts.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create ServiceAccount %s/default: %w", p.opts.Namespace, err)
	}
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.opts.Namespace, Labels: p.podLabels(nodeSet)},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{
			Name: "elasticsearch", Image: "docker.elastic.co/elasticsearch/elasticsearch",
		}}},
	}
	if _, err := p.opts.Kube.CoreV1().Pods(p.opts.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create pod %s/%s: %w", p.opts.Namespace, name, err)
	}
	return nil
}

// Mounted returns an object's data as the pod's files show it now ("configMap" or "secret").
func (p *Pod) Mounted(kind, name string) (map[string][]byte, bool) {
	return p.view.visible(objectKey(kind, name), time.Now())
}
