package transporttrust

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/wiring"
)

// LabelElasticsearch names, on ecklink's own transport CA ConfigMap, the Elasticsearch it is for.
// (Not the importer's ecklink.io/elasticsearch label: this ConfigMap is shared by both halves.)
const LabelElasticsearch = "ecklink.io/transport-ca-of"

// Store reads and writes the transport CA ConfigMaps of Elasticsearch resources, and wires ecklink's
// own into the resource through Editor (wiring.WireTransportCA). Every ConfigMap write uses
// optimistic concurrency: the exporter and the importer may change the same ConfigMap, and a
// conflict is retried by the caller's queue.
type Store struct {
	Kube   kubernetes.Interface
	Editor *wiring.Editor
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Result describes an Elasticsearch's transport CA ConfigMap after Apply.
type Result struct {
	// ConfigMap is the ConfigMap that holds (or would hold) the CAs.
	ConfigMap string
	// Own is true for ecklink's ConfigMap, false for one the user named.
	Own bool
	// Exists says whether the ConfigMap exists.
	Exists bool
	// Owners are the owners with CAs in the ConfigMap and their CAs.
	Owners map[string][]*x509.Certificate
	// Wired is true when the Elasticsearch names ConfigMap, so ECK reads it.
	Wired bool
	// Snippet is, when the Elasticsearch should be wired and may not be touched, what to add.
	Snippet string
}

// Leftover reports whether res (from Read) shows ecklink's own ConfigMap or wiring with no owner
// left: what a removal cut short (a conflict on the resource, a crash) leaves behind. Apply with
// no change takes it away.
func (r Result) Leftover(es *unstructured.Unstructured) bool {
	userWired := wiring.TransportCAConfigMapOf(es) == r.ConfigMap && !wiring.TransportCAWiredByUs(es)
	return r.Own && len(r.Owners) == 0 && ((r.Exists && !userWired) || wiring.TransportCAWiredByUs(es))
}

// target is the ConfigMap that holds es's extra transport CAs.
func target(es *unstructured.Unstructured) (string, bool) {
	own := wiring.TransportCAConfigMapName(es.GetName())
	if name := wiring.TransportCAConfigMapOf(es); name != "" {
		return name, name == own
	}
	return own, true
}

// Read returns the owners and CAs in es's transport CA ConfigMap (none if it does not exist).
func (s *Store) Read(ctx context.Context, es *unstructured.Unstructured) (Result, error) {
	name, own := target(es)
	res := Result{ConfigMap: name, Own: own, Owners: map[string][]*x509.Certificate{}, Wired: wiring.TransportCAConfigMapOf(es) == name}
	cm, err := s.Kube.CoreV1().ConfigMaps(es.GetNamespace()).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("failed to read ConfigMap %s/%s: %w", es.GetNamespace(), name, err)
	}
	res.Exists = true
	if res.Owners, err = Certificates(cm); err != nil {
		return res, err
	}
	return res, nil
}

// Apply sets the CAs of the owners in want (nil removes an owner) in es's transport CA ConfigMap:
// the one es names, else ecklink's own, created on demand. When owners remain and es names no
// ConfigMap, a mode that Edits lets Apply wire ecklink's into es; otherwise Result.Snippet says
// what to add. When no owner remains, ecklink's wiring is undone first and its ConfigMap deleted after, so ECK
// never looks for a ConfigMap that is gone (it would stop reconciling the transport
// certificates, CA rotation included). A ConfigMap the user named is only ever updated.
func (s *Store) Apply(ctx context.Context, es *unstructured.Unstructured, want map[string][]*x509.Certificate, mode wiring.Mode) (Result, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	// unwire updates es in place so that the steps below read the spec it leaves; the caller's
	// es is usually the informer's cached object, which nobody may write.
	es = es.DeepCopy()
	ns := es.GetNamespace()
	name, own := target(es)
	res := Result{ConfigMap: name, Own: own, Owners: map[string][]*x509.Certificate{}}
	client := s.Kube.CoreV1().ConfigMaps(ns)
	if !own && wiring.TransportCAWiredByUs(es) {
		// The user named a ConfigMap of their own in place of ecklink's: the owners move there
		// (below), and ecklink's record and ConfigMap go.
		if err := s.unwire(ctx, es); err != nil {
			return res, err
		}
		if err := client.Delete(ctx, wiring.TransportCAConfigMapName(es.GetName()), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return res, fmt.Errorf("failed to delete ConfigMap %s/%s: %w", ns, wiring.TransportCAConfigMapName(es.GetName()), err)
		}
	}
	cm, err := client.Get(ctx, name, metav1.GetOptions{})
	exists := err == nil
	switch {
	case apierrors.IsNotFound(err) && !own:
		return res, fmt.Errorf("ConfigMap %s, named by spec.transport.tls.certificateAuthorities of Elasticsearch %s, does not exist (ECK cannot reconcile the transport certificates until it does)", name, es.GetName())
	case apierrors.IsNotFound(err):
		if !adds(want) {
			// Nothing to hold: make sure no wiring points at the missing ConfigMap.
			return res, s.unwire(ctx, es)
		}
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			cache.ManagedByLabel: cache.ManagedByValue, LabelElasticsearch: es.GetName(),
		}}}
	case err != nil:
		return res, fmt.Errorf("failed to read ConfigMap %s/%s: %w", ns, name, err)
	}
	changed, err := Update(cm, want, now())
	if err != nil {
		return res, err
	}
	switch {
	case !exists:
		if cm, err = client.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return res, fmt.Errorf("failed to create ConfigMap %s/%s: %w", ns, name, err)
		}
	case changed:
		if cm, err = client.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return res, fmt.Errorf("failed to update ConfigMap %s/%s: %w", ns, name, err)
		}
	}
	if res.Owners, err = Certificates(cm); err != nil {
		return res, err
	}
	if len(res.Owners) > 0 {
		res.Wired = wiring.TransportCAConfigMapOf(es) == name
		switch {
		case res.Wired:
		case mode.Edits():
			if err := s.wire(ctx, es); err != nil {
				return res, err
			}
			res.Wired = true
		default:
			res.Snippet = wiring.TransportCASnippet(es)
		}
		return res, nil
	}
	if !own {
		return res, nil
	}
	if err := s.unwire(ctx, es); err != nil {
		return res, err
	}
	if wiring.TransportCAConfigMapOf(es) == name && !wiring.TransportCAWiredByUs(es) {
		// The user wired ecklink's ConfigMap by hand (manual mode): it must stay.
		return res, nil
	}
	rv := cm.ResourceVersion
	err = client.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) {
		return res, fmt.Errorf("failed to delete ConfigMap %s/%s: %w", ns, name, err)
	}
	return res, nil
}

func adds(want map[string][]*x509.Certificate) bool {
	for _, certs := range want {
		if len(certs) > 0 {
			return true
		}
	}
	return false
}

func (s *Store) wire(ctx context.Context, es *unstructured.Unstructured) error {
	_, _, err := s.Editor.Edit(ctx, es, "wire the transport CA ConfigMap into", wiring.WireTransportCA)
	return err
}

// unwire undoes wiring.WireTransportCA on es, in place so that Apply's next steps see the new
// spec (es is Apply's own copy).
func (s *Store) unwire(ctx context.Context, es *unstructured.Unstructured) error {
	updated, _, err := s.Editor.Edit(ctx, es, "unwire the transport CA ConfigMap from", wiring.UnwireTransportCA)
	if err != nil {
		return err
	}
	es.Object = updated.Object
	return nil
}

// ReleaseOrphaned removes owners from ecklink's ConfigMap of an Elasticsearch that no longer
// exists (there is nothing to unwire), and deletes the ConfigMap when none is left.
func (s *Store) ReleaseOrphaned(ctx context.Context, ns, es string, release func(owner string) bool) error {
	client := s.Kube.CoreV1().ConfigMaps(ns)
	name := wiring.TransportCAConfigMapName(es)
	cm, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read ConfigMap %s/%s: %w", ns, name, err)
	}
	owners, err := Owners(cm)
	if err != nil {
		return err
	}
	want := map[string][]*x509.Certificate{}
	for owner := range owners {
		if release(owner) {
			want[owner] = nil
		}
	}
	if len(want) == 0 {
		return nil
	}
	if _, err := Update(cm, want, time.Now()); err != nil {
		return err
	}
	if left, _ := Owners(cm); len(left) > 0 {
		if _, err := client.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("failed to update ConfigMap %s/%s: %w", ns, name, err)
		}
		return nil
	}
	rv := cm.ResourceVersion
	if err := client.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", ns, name, err)
	}
	return nil
}
