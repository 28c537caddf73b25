package fakekube

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ecklink/ecklink/agent/internal/testenv"
)

// Write kinds counted by Inflight.
const (
	// Update is an update of an object (metadata and spec: a finalizer, a label).
	Update = "update"
	// Status is an update of an object's status subresource.
	Status = "status"
)

// HeldWrite is how long a counted write is held before it reaches the wrapped client, so that
// writes made side by side overlap.
const HeldWrite = 20 * time.Millisecond

// Inflight counts the writes in progress, by kind (Update, Status), the most that were at once,
// and all of them.
type Inflight struct {
	mu       sync.Mutex
	now, max map[string]int
	total    testenv.Counts
}

// NewInflight returns an empty count.
func NewInflight() *Inflight {
	return &Inflight{now: map[string]int{}, max: map[string]int{}}
}

// Max is the most writes of kind that were in progress at once.
func (c *Inflight) Max(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max[kind]
}

// Total is how many writes of kind were made.
func (c *Inflight) Total(kind string) int { return c.total.Get(kind) }

func (c *Inflight) enter(kind string) {
	c.total.Add(kind)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[kind]++
	c.max[kind] = max(c.max[kind], c.now[kind])
}

func (c *Inflight) leave(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now[kind]--
}

// Counting wraps a dynamic client (typically the fake one, which serializes its own calls) so
// that each Update and UpdateStatus is counted in c and held for HeldWrite outside the wrapped
// client.
func Counting(d dynamic.Interface, c *Inflight) dynamic.Interface {
	return countingDynamic{d, c}
}

type countingDynamic struct {
	dynamic.Interface
	c *Inflight
}

func (d countingDynamic) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return countingNamespaceable{d.Interface.Resource(gvr), d.c}
}

type countingNamespaceable struct {
	dynamic.NamespaceableResourceInterface
	c *Inflight
}

func (n countingNamespaceable) Namespace(ns string) dynamic.ResourceInterface {
	return countingResource{n.NamespaceableResourceInterface.Namespace(ns), n.c}
}

type countingResource struct {
	dynamic.ResourceInterface
	c *Inflight
}

func (r countingResource) Update(ctx context.Context, obj *unstructured.Unstructured, opts metav1.UpdateOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.c.enter(Update)
	defer r.c.leave(Update)
	time.Sleep(HeldWrite)
	return r.ResourceInterface.Update(ctx, obj, opts, sub...)
}

func (r countingResource) UpdateStatus(ctx context.Context, obj *unstructured.Unstructured, opts metav1.UpdateOptions) (*unstructured.Unstructured, error) {
	r.c.enter(Status)
	defer r.c.leave(Status)
	time.Sleep(HeldWrite)
	return r.ResourceInterface.UpdateStatus(ctx, obj, opts)
}
