package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/internal/worker"
)

// The kubelet shows a changed ConfigMap or Secret in a pod's files only when it next syncs the
// pod: up to its sync period (1 minute by default, with jitter) plus its cache delay. A pod
// update syncs the pod at once, so after it changed a mounted object (the remote CA ConfigMap,
// the signing certificate Secret), the agent bumps an annotation of its own on the consuming
// Elasticsearch's pods, as ECK does for its own Secrets (annotation.MarkPodsAsUpdated,
// update.k8s.elastic.co/timestamp). Best effort, as ECK's: a failure only leaves the kubelet's
// own schedule. Bursts coalesce: one list and one patch per pod at a time per Elasticsearch.

// AnnotationUpdatedAt is bumped on the pods of a consuming Elasticsearch after a mounted
// ConfigMap or Secret of the agent changed.
const AnnotationUpdatedAt = "ecklink.io/updated-at"

// podMarker is the queue of Elasticsearch resources whose pods to mark.
type podMarker struct {
	queue workqueue.TypedDelayingInterface[types.NamespacedName]
	// denied is set once listing or patching pods was forbidden (logged once).
	denied bool
}

func (m *podMarker) init() {
	m.queue = workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[types.NamespacedName]{Name: "importer-pods"})
}

// markCoalesce gathers the changes of an Elasticsearch's mounted objects over a short window
// into one mark: against the kubelet's minute it costs nothing, and a burst of CA updates (many
// links, many rotations) costs one list and one patch per pod.
const markCoalesce = 200 * time.Millisecond

// markPods asks for the pods of an Elasticsearch to be marked as updated.
func (im *Importer) markPods(key types.NamespacedName) { im.pods.queue.AddAfter(key, markCoalesce) }

// runPodMarker marks pods until ctx ends, with one worker (pods.denied is its own).
func (im *Importer) runPodMarker(ctx context.Context) {
	worker.Run(ctx, im.pods.queue, 1, func(ctx context.Context, key types.NamespacedName) {
		if err := im.markPodsNow(ctx, key); err != nil {
			if apierrors.IsForbidden(err) && !im.pods.denied {
				im.pods.denied = true
				im.log.Warn("cannot mark Elasticsearch pods as updated (RBAC: pods list, patch); mounted files follow at the kubelet's next sync", "error", err)
			} else {
				im.log.Debug("failed to mark Elasticsearch pods as updated", "elasticsearch", key.String(), "error", err)
			}
		}
	})
}

func (im *Importer) markPodsNow(ctx context.Context, key types.NamespacedName) error {
	pods := im.cfg.Pods.CoreV1().Pods(key.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: eck.ClusterNameLabel + "=" + key.Name})
	if err != nil {
		return fmt.Errorf("failed to list the pods of %s: %w", key, err)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationUpdatedAt: im.cfg.Now().UTC().Format(time.RFC3339Nano),
	}}})
	for _, p := range list.Items {
		if _, err := pods.Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to mark pod %s/%s as updated: %w", p.Namespace, p.Name, err)
		}
	}
	if len(list.Items) > 0 {
		im.log.Debug("elasticsearch pods marked as updated", "elasticsearch", key.String(), "pods", len(list.Items))
	}
	return nil
}
