package importer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/worker"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The CA path. A renewed remote CA is the one change that must reach the consuming
// Elasticsearch at once, and the only thing it changes is the CA ConfigMap: no Secret, no
// wiring, no settings, no Elasticsearch call. So credentials whose only difference from the
// last ones received for the link is the CA bundle skip the per-Elasticsearch reconcile: a queue
// of their own, keyed by Elasticsearch, merges the new bundles of every link of that
// Elasticsearch that changed together into its ConfigMap, read from the informer cache, with
// one write, while a full reconcile of the same Elasticsearch may be running.
//
// Ordering: the answer is stored before the CA path runs, and the full reconcile merges the
// latest bundle of a link (latestCA), so neither writes an older bundle over a newer one; both
// write with optimistic concurrency, and the one that loses the race decides again on what the
// other wrote (the CA path reads the ConfigMap live once, the full reconcile runs again). A
// ConfigMap that does not hold the link yet, or any failure, hands the Elasticsearch to the full
// reconcile, which applies everything.

// caPath is the CA path's queue.
type caPath struct {
	queue workqueue.TypedInterface[types.NamespacedName]
}

func (c *caPath) init() {
	c.queue = workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[types.NamespacedName]{Name: "importer-ca"})
}

// caWorkers apply CA-only changes of different Elasticsearch resources side by side.
const caWorkers = 4

// runCAPath drains the CA path's queue until ctx ends.
func (im *Importer) runCAPath(ctx context.Context) {
	worker.Run(ctx, im.ca.queue, caWorkers, func(ctx context.Context, key types.NamespacedName) {
		if err := im.applyCAOnly(ctx, key); err != nil {
			im.log.Warn("CA-only update failed, the full reconcile applies it", "elasticsearch", key.String(), "error", err)
			im.enqueue(key, trigCAFallback)
		}
	})
}

// caOnlyChange reports whether next differs from prev, both credentials of the same peer for a
// link, in the CA bundle only, of a model whose CA takes the CA path (securityModel.sharesCA:
// the API-key model; certificate-model CAs go to the transport trust, through the full reconcile).
func caOnlyChange(prev, next *received) bool {
	if prev == nil || next == nil || prev.removed || next.removed || prev.creds == nil || next.creds == nil || prev.peer != next.peer {
		return false
	}
	if !sharesCA(next.creds.GetModel()) || bytes.Equal(prev.creds.GetCaBundle(), next.creds.GetCaBundle()) {
		return false
	}
	a, b := proto.Clone(prev.creds).(*peerv1.Credentials), proto.Clone(next.creds).(*peerv1.Credentials)
	a.CaBundle, b.CaBundle = nil, nil
	return proto.Equal(a, b)
}

// latestCA is the CA bundle to merge for a link in a full reconcile: the newest received, when
// it came after the plan as a CA-only change.
func (im *Importer) latestCA(p *linkPlan) []byte {
	im.mu.Lock()
	defer im.mu.Unlock()
	if r := im.answers[p.id]; r != p.answer && caOnlyChange(p.answer, r) {
		return r.creds.GetCaBundle()
	}
	return p.answer.creds.GetCaBundle()
}

// applyCAOnly merges the newest CA bundles of the links of one Elasticsearch into its CA
// ConfigMap, with one write.
func (im *Importer) applyCAOnly(ctx context.Context, key types.NamespacedName) error {
	start := time.Now()
	name := wiring.CAConfigMapName(key.Name)
	cm, ok := im.cachedConfigMap(key.Namespace, name)
	if !ok {
		im.enqueue(key, trigCAFallback) // nothing applied yet: the full reconcile creates it
		return nil
	}
	for attempt := 0; ; attempt++ {
		want, changed, bundles, err := im.caOnlyData(key, cm)
		if err != nil || len(changed) == 0 {
			return err
		}
		_, err = im.saveConfigMap(ctx, want, true)
		if apierrors.IsConflict(err) && attempt == 0 {
			if cm, err = im.cfg.Kube.CoreV1().ConfigMaps(key.Namespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("failed to read ConfigMap %s/%s: %w", key.Namespace, name, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		im.log.Debug("CA-only change applied", "elasticsearch", key.String(), "aliases", len(changed), "duration", time.Since(start))
		im.markPods(key)
		im.publishCAStatus(key, changed, bundles)
		return nil
	}
}

// caOnlyData is the ConfigMap cur with each applied alias's CAs merged with the newest bundle
// received for it, the aliases whose CAs changed, and the bundle of every alias it holds.
// Aliases the ConfigMap does not hold are left to the full reconcile. The links of one
// exported Elasticsearch hold the same bundles and receive the same new one: each distinct
// merge is computed once (caMerger) and stored once (wiring.CABundleData).
func (im *Importer) caOnlyData(key types.NamespacedName, cur *corev1.ConfigMap) (*corev1.ConfigMap, []string, map[string]string, error) {
	bundles := wiring.AliasCABundles(cur.Data, cur.Annotations)
	merger := newCAMerger(im.cfg.Now())
	var changed []string
	for alias, prev := range bundles {
		id := link.ID{Namespace: key.Namespace, Elasticsearch: key.Name, Alias: alias}
		im.mu.Lock()
		r := im.answers[id]
		im.mu.Unlock()
		if r == nil || r.removed || r.creds == nil || !sharesCA(r.creds.GetModel()) {
			continue
		}
		merged, err := merger.merge(prev, r.creds.GetCaBundle())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("failed to merge the CA bundle of alias %s: %w", alias, err)
		}
		if merged != prev {
			bundles[alias] = merged
			changed = append(changed, alias)
		}
	}
	if len(changed) == 0 {
		return cur, nil, bundles, nil
	}
	slices.Sort(changed)
	return withCABundles(cur, bundles), changed, bundles, nil
}
