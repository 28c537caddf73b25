package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// ClientConfig configures NewClient.
type ClientConfig struct {
	// Dynamic is the client that does the requests. Required.
	Dynamic dynamic.Interface
	// Recorder, if set, receives an Event for every condition transition that UpdateStatus
	// stores.
	Recorder *Recorder
}

// Client is a typed client for the ecklink resources over the dynamic client.
type Client struct {
	peers          *ResourceClient[v1alpha1.Peer, *v1alpha1.Peer]
	clusterExports *ResourceClient[v1alpha1.ClusterExport, *v1alpha1.ClusterExport]
	remoteClusters *ResourceClient[v1alpha1.RemoteCluster, *v1alpha1.RemoteCluster]
}

// NewClient returns a Client for the ecklink resources.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Dynamic == nil {
		return nil, errors.New("failed to create client: Dynamic is required")
	}
	return &Client{
		peers:          newResourceClient[v1alpha1.Peer](cfg, v1alpha1.PeerGVR),
		clusterExports: newResourceClient[v1alpha1.ClusterExport](cfg, v1alpha1.ClusterExportGVR),
		remoteClusters: newResourceClient[v1alpha1.RemoteCluster](cfg, v1alpha1.RemoteClusterGVR),
	}, nil
}

// Peers returns the client for Peers.
func (c *Client) Peers() *ResourceClient[v1alpha1.Peer, *v1alpha1.Peer] { return c.peers }

// ClusterExports returns the client for ClusterExports.
func (c *Client) ClusterExports() *ResourceClient[v1alpha1.ClusterExport, *v1alpha1.ClusterExport] {
	return c.clusterExports
}

// RemoteClusters returns the client for RemoteClusters.
func (c *Client) RemoteClusters() *ResourceClient[v1alpha1.RemoteCluster, *v1alpha1.RemoteCluster] {
	return c.remoteClusters
}

// Object is the pointer type of an ecklink resource T, e.g. *v1alpha1.Peer.
type Object[T any] interface {
	*T
	runtime.Object
	Conditioned
}

// ResourceClient reads and writes one namespaced ecklink resource as typed objects. Errors wrap
// the API server's, so apierrors.IsNotFound and friends work on them.
type ResourceClient[T any, P Object[T]] struct {
	resource dynamic.NamespaceableResourceInterface
	gvr      schema.GroupVersionResource
	recorder *Recorder

	mu      sync.Mutex
	written map[types.NamespacedName]statusWrite[T, P]
	// ttl is writtenTTL (tests shorten it); sweep, armed while written holds entries, forgets
	// the expired ones: a client that wrote the statuses of 1,000 objects once (the prober's
	// first round) and not since would otherwise keep their copies (~8 MB) for good.
	ttl   time.Duration
	sweep *time.Timer
}

// statusWrite is the last status write of one object: a copy of the object the API server
// returned and the resourceVersions it is newer than (the copies the write was made over).
type statusWrite[T any, P Object[T]] struct {
	over   []string
	stored P
	at     time.Time
}

// The status writes remembered: a write is forgotten once the caller passes a copy it is not
// known to be newer than, or after writtenTTL (an informer catches up within milliseconds), when
// a sweep finds it expired; past maxWritten entries, a write is not remembered. maxOver bounds the versions
// one write remembers (each write while the informer lags adds one).
const (
	writtenTTL = time.Minute
	maxWritten = 4096
	maxOver    = 16
)

func newResourceClient[T any, P Object[T]](cfg ClientConfig, gvr schema.GroupVersionResource) *ResourceClient[T, P] {
	return &ResourceClient[T, P]{resource: cfg.Dynamic.Resource(gvr), gvr: gvr, recorder: cfg.Recorder,
		written: map[types.NamespacedName]statusWrite[T, P]{}, ttl: writtenTTL}
}

// latest returns the object UpdateStatus starts from, and the versions that object is known to be
// newer than: obj, or what this client stored over obj's resourceVersion when obj is such an
// older copy. Callers pass an informer's copy, which lags the client's own writes: compared with
// the stale copy, a status that goes back to the copy's (False written, True again on the next
// pass) would be "unchanged" and never written. When another writer came in between, the write
// conflicts and the retry reads the object again.
func (c *ResourceClient[T, P]) latest(obj P) (P, []string) {
	if obj.GetResourceVersion() == "" {
		return obj, nil // not a copy of a stored object: nothing to compare it with
	}
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.written[key]
	if !ok {
		return obj, nil
	}
	if slices.Contains(w.over, obj.GetResourceVersion()) && time.Since(w.at) < c.ttl {
		return w.stored, w.over
	}
	delete(c.written, key)
	return obj, nil
}

// wrote remembers a status write of stored, newer than the versions over.
func (c *ResourceClient[T, P]) wrote(over []string, stored P) {
	key := types.NamespacedName{Namespace: stored.GetNamespace(), Name: stored.GetName()}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.written) >= maxWritten {
		c.forgetExpiredLocked(now)
	}
	if len(c.written) < maxWritten {
		c.written[key] = statusWrite[T, P]{over: over[max(0, len(over)-maxOver):], stored: stored.DeepCopyObject().(P), at: now}
	}
	if c.sweep == nil {
		c.sweep = time.AfterFunc(c.ttl, c.sweepExpired)
	}
}

// sweepExpired forgets the expired writes and runs again while any are left.
func (c *ResourceClient[T, P]) sweepExpired() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgetExpiredLocked(time.Now()); len(c.written) == 0 {
		c.sweep = nil
		return
	}
	c.sweep.Reset(c.ttl)
}

func (c *ResourceClient[T, P]) forgetExpiredLocked(now time.Time) {
	for k, w := range c.written {
		if now.Sub(w.at) >= c.ttl {
			delete(c.written, k)
		}
	}
}

// Get reads one object.
func (c *ResourceClient[T, P]) Get(ctx context.Context, namespace, name string) (P, error) {
	u, err := c.resource.Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to get %s %s/%s: %w", c.gvr.Resource, namespace, name, err)
	}
	return FromUnstructured[T](u)
}

// List lists the objects of a namespace, or of all namespaces when namespace is empty.
func (c *ResourceClient[T, P]) List(ctx context.Context, namespace string, opts metav1.ListOptions) ([]P, error) {
	list, err := c.resource.Namespace(namespace).List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to list %s: %w", c.gvr.Resource, err)
	}
	out := make([]P, 0, len(list.Items))
	for i := range list.Items {
		obj, err := FromUnstructured[T](&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// Create creates obj in its namespace and returns the stored object.
func (c *ResourceClient[T, P]) Create(ctx context.Context, obj P) (P, error) {
	return c.send(ctx, "create", obj, func(r dynamic.ResourceInterface, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return r.Create(ctx, u, metav1.CreateOptions{})
	})
}

// Update writes obj's metadata and spec (the status is ignored by the API server). It fails with
// a conflict when obj's resourceVersion is stale: the caller decides again on fresh data.
func (c *ResourceClient[T, P]) Update(ctx context.Context, obj P) (P, error) {
	return c.send(ctx, "update", obj, func(r dynamic.ResourceInterface, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		return r.Update(ctx, u, metav1.UpdateOptions{})
	})
}

// send converts obj, hands it to write (a create or an update in obj's namespace) and converts
// back what the API server stored.
func (c *ResourceClient[T, P]) send(ctx context.Context, verb string, obj P, write func(dynamic.ResourceInterface, *unstructured.Unstructured) (*unstructured.Unstructured, error)) (P, error) {
	u, err := ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	out, err := write(c.resource.Namespace(obj.GetNamespace()), u)
	if err != nil {
		return nil, fmt.Errorf("failed to %s %s %s/%s: %w", verb, c.gvr.Resource, obj.GetNamespace(), obj.GetName(), err)
	}
	return FromUnstructured[T](out)
}

// Delete deletes one object.
func (c *ResourceClient[T, P]) Delete(ctx context.Context, namespace, name string) error {
	if err := c.resource.Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("failed to delete %s %s/%s: %w", c.gvr.Resource, namespace, name, err)
	}
	return nil
}

// statusOf returns a pointer to obj's Status field (every ecklink resource has one), so a
// comparison walks the status only, not the metadata and spec the write leaves alone.
func statusOf(obj runtime.Object) any {
	return reflect.ValueOf(obj).Elem().FieldByName("Status").Addr().Interface()
}

// sameStatus reports whether a and b have semantically equal statuses. reflect.DeepEqual first:
// it needs no calls through reflection and answers the common case, a status mutate left as it
// was; times that differ only in their location fall through to the semantic comparison.
func sameStatus(a, b runtime.Object) bool {
	sa, sb := statusOf(a), statusOf(b)
	return reflect.DeepEqual(sa, sb) || equality.Semantic.DeepEqual(sa, sb)
}

// UpdateStatus applies mutate to a copy of obj and writes the status. On a conflict it reads the
// object again and applies mutate to the fresh copy, so mutate must compute the status from its
// argument and may run more than once. When mutate leaves the status as it was, nothing is
// written. It returns the stored object (obj's copy when nothing was written) and, with a
// Recorder, records an Event for each condition transition it stored. obj may be an informer's
// copy that has not seen this client's last write yet: UpdateStatus then starts from that write.
func (c *ResourceClient[T, P]) UpdateStatus(ctx context.Context, obj P, mutate func(P) error) (P, error) {
	current, over := c.latest(obj)
	over = slices.Clone(over)
	var stored P
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		for _, rv := range []string{obj.GetResourceVersion(), current.GetResourceVersion()} {
			if rv != "" && !slices.Contains(over, rv) {
				over = append(over, rv)
			}
		}
		next := current.DeepCopyObject().(P)
		if err := mutate(next); err != nil {
			return err
		}
		if sameStatus(current, next) {
			// Nothing changed (the common case of a periodic pass): no conversion, no write.
			// Only the status is compared: it is all this writes.
			stored = next
			return nil
		}
		before, err := ToUnstructured(current)
		if err != nil {
			return err
		}
		after, err := ToUnstructured(next)
		if err != nil {
			return err
		}
		if reflect.DeepEqual(before.Object["status"], after.Object["status"]) {
			stored = next
			return nil
		}
		out, err := c.resource.Namespace(next.GetNamespace()).UpdateStatus(ctx, after, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, getErr := c.Get(ctx, next.GetNamespace(), next.GetName())
			if getErr != nil {
				return getErr
			}
			current = fresh
			return err
		}
		if err != nil {
			return err
		}
		out.SetManagedFields(nil) // as the informers keep objects (cache): nothing reads them, and the copy is kept (wrote)
		if stored, err = FromUnstructured[T](out); err != nil {
			return err
		}
		c.wrote(over, stored)
		if c.recorder != nil {
			c.recorder.RecordTransitions(stored, current.GetConditions(), stored.GetConditions())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to update status of %s %s/%s: %w", c.gvr.Resource, obj.GetNamespace(), obj.GetName(), err)
	}
	return stored, nil
}
