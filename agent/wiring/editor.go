package wiring

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/eck"
)

// Change edits an Elasticsearch resource in place and describes each change. A Change must be
// idempotent: on a conflict it runs again on the current object, and a Change that leaves the
// object as it was costs no write.
type Change func(es *unstructured.Unstructured) ([]string, error)

// Editor is the one writer of ECK's Elasticsearch resources: every edit of the agent (wiring,
// transport CA, the agent's user, volumes, the remote cluster server) goes through Edit.
type Editor struct {
	dynamic dynamic.Interface
	log     hclog.Logger
	backoff wait.Backoff
}

// NewEditor returns an Editor writing through client; log may be nil.
func NewEditor(client dynamic.Interface, log hclog.Logger) *Editor {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Editor{dynamic: client, log: log, backoff: retry.DefaultRetry}
}

// Edit applies change to a copy of es (the caller's current view, usually the informer's) and
// updates the resource when the copy differs, with es's resourceVersion. On a conflict it reads
// the resource from the API server and applies change again, a few times (retry.DefaultRetry),
// so a concurrent writer (ECK, the user, the other half) does not cost a whole pass. what names
// the edit in errors: "failed to <what> Elasticsearch <namespace>/<name>: ...". Edit returns the
// object as stored (es itself when nothing was written) and change's descriptions; errors of
// change itself are returned as they are (they name the resource and the field already).
func (e *Editor) Edit(ctx context.Context, es *unstructured.Unstructured, what string, change Change) (*unstructured.Unstructured, []string, error) {
	ns, name := es.GetNamespace(), es.GetName()
	client := e.dynamic.Resource(eck.ElasticsearchGVR).Namespace(ns)
	current, result := es, es
	var changes []string
	var changeErr error
	first := true
	err := retry.RetryOnConflict(e.backoff, func() error {
		if !first {
			live, err := client.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			current = live
		}
		first = false
		obj := current.DeepCopy()
		changes, changeErr = change(obj)
		if changeErr != nil {
			return nil
		}
		if equality.Semantic.DeepEqual(obj.Object, current.Object) {
			result = current
			return nil
		}
		updated, err := client.Update(ctx, obj, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			e.log.Debug("conflict on the elasticsearch resource, editing the current object", "elasticsearch", ns+"/"+name, "step", what)
		}
		if err != nil {
			return err
		}
		result = updated
		return nil
	})
	if changeErr != nil {
		return es, nil, changeErr
	}
	if err != nil {
		return es, nil, fmt.Errorf("failed to %s Elasticsearch %s/%s: %w", what, ns, name, err)
	}
	return result, changes, nil
}
