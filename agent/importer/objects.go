package importer

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
)

const (
	// labelElasticsearch names the local Elasticsearch on the agent's Secret and ConfigMap.
	labelElasticsearch = "ecklink.io/elasticsearch"
	// annotationAliases is where release 0.1.0 listed the aliases whose cluster settings the
	// agent manages (JSON list), in the user's namespace; read once to migrate it (aliases.go).
	annotationAliases = "ecklink.io/managed-aliases"
	// annotationKeyIDs maps alias -> API key id of the value in the Secret.
	annotationKeyIDs = "ecklink.io/key-ids"
	// annotationEffective maps alias -> API key id known to be in the nodes' keystore.
	annotationEffective = "ecklink.io/effective-key-ids"
)

var caSelector = labels.SelectorFromSet(labels.Set{cache.ManagedByLabel: cache.ManagedByValue})

// ownLabels are the labels of the agent's objects for one local Elasticsearch. No owner
// references and no ECK labels: ECK's docs warn that copying those causes cascade deletions.
func ownLabels(es string) map[string]string {
	return map[string]string{cache.ManagedByLabel: cache.ManagedByValue, labelElasticsearch: es}
}

// mergeCAs keeps the CAs held for an alias with the new bundle, by the one retention policy
// (pemutil.Retain): the new CAs first, then the previous ones still valid, newest first.
func mergeCAs(previous, incoming []byte, now time.Time) ([]byte, []*x509.Certificate, error) {
	in, err := pemutil.ParseCertificates(incoming, pemutil.Limits{})
	if err != nil {
		return nil, nil, err
	}
	var prev []*x509.Certificate
	if len(previous) > 0 {
		prev, _ = pemutil.ParseCertificates(previous, pemutil.Limits{})
	}
	all := pemutil.Retain(in, prev, now, nil)
	return pemutil.EncodeBundle(all), all, nil
}

// caMerger merges per alias, as mergeCAs, but computes each distinct (previous, incoming)
// pair once: the links of one exported Elasticsearch hold the same CAs and receive the same
// new bundle, so the certificates parsed do not grow with the number of links.
type caMerger struct {
	now time.Time
	// merged is previous -> incoming -> merged. Looked up as m[previous][string(incoming)], the
	// incoming bundle is not copied into a key for each alias (Go does not allocate a
	// map[string] key converted from []byte for a lookup): only a pair not seen yet is.
	merged map[string]map[string]string
}

func newCAMerger(now time.Time) *caMerger {
	return &caMerger{now: now, merged: map[string]map[string]string{}}
}

func (m *caMerger) merge(previous string, incoming []byte) (string, error) {
	if v, ok := m.merged[previous][string(incoming)]; ok {
		return v, nil
	}
	out, _, err := mergeCAs([]byte(previous), incoming, m.now)
	if err != nil {
		return "", err
	}
	byIncoming := m.merged[previous]
	if byIncoming == nil {
		byIncoming = map[string]string{}
		m.merged[previous] = byIncoming
	}
	merged := string(out)
	byIncoming[string(incoming)] = merged
	return merged, nil
}

// nextCABundles is the bundle of each alias after a full reconcile: what the ConfigMap cm held
// for it (in either layout: wiring.AliasCABundles) merged with the newest bundle received
// (incoming, alias -> PEM), and, for the held aliases (links waiting for their peer's first
// answer), what they have. Aliases in neither are dropped, and with them any entry no other
// alias uses.
func nextCABundles(cm *corev1.ConfigMap, incoming map[string][]byte, held []string, now time.Time) (map[string]string, error) {
	previous := wiring.AliasCABundles(cm.Data, cm.Annotations)
	bundles := make(map[string]string, len(incoming)+len(held))
	merger := newCAMerger(now)
	for alias, in := range incoming {
		merged, err := merger.merge(previous[alias], in)
		if err != nil {
			return nil, fmt.Errorf("failed to merge the CA bundle of alias %s: %w", alias, err)
		}
		bundles[alias] = merged
	}
	for _, alias := range held {
		if v := previous[alias]; v != "" {
			bundles[alias] = v
		}
	}
	return bundles, nil
}

// caConfigMapData is the CA ConfigMap content for the bundles of every alias (alias -> PEM):
// each distinct bundle once (wiring.CABundleData), ca.crt, and the alias -> entry index for
// the wiring.AnnotationCAEntries annotation.
func caConfigMapData(bundles map[string]string) (data map[string]string, index string) {
	data, index = wiring.CABundleData(bundles)
	data[wiring.CAFileKey] = combinedBundle(bundles)
	return data, index
}

// withCABundles is a copy of the CA ConfigMap cm holding bundles (alias -> PEM): its data
// (caConfigMapData) and its index annotation.
func withCABundles(cm *corev1.ConfigMap, bundles map[string]string) *corev1.ConfigMap {
	out := cm.DeepCopy()
	var index string
	out.Data, index = caConfigMapData(bundles)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[wiring.AnnotationCAEntries] = index
	return out
}

// combinedBundle is ca.crt: every alias's CAs, deduplicated, in alias order.
// Aliases holding the same bundle (the links of one exported Elasticsearch) are parsed once.
func combinedBundle(bundles map[string]string) string {
	seen := map[string]bool{}
	parsed := map[string]bool{}
	var all []*x509.Certificate
	for _, a := range slices.Sorted(maps.Keys(bundles)) {
		bundle := bundles[a]
		if parsed[bundle] {
			continue
		}
		parsed[bundle] = true
		certs, _ := pemutil.ParseCertificates([]byte(bundle), pemutil.Limits{})
		for _, c := range certs {
			if fp := pemutil.Fingerprint(c); !seen[fp] {
				seen[fp] = true
				all = append(all, c)
			}
		}
	}
	return string(pemutil.EncodeBundle(all))
}

func readJSONMap(ann map[string]string, key string) map[string]string {
	out := map[string]string{}
	if raw := ann[key]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &out)
	}
	return out
}

func readJSONList(ann map[string]string, key string) []string {
	var out []string
	if raw := ann[key]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &out)
	}
	return out
}

func writeJSON(ann map[string]string, key string, v any) {
	data, _ := json.Marshal(v)
	ann[key] = string(data)
}

// saveConfigMap creates or updates the agent's ConfigMap (optimistic concurrency).
func (im *Importer) saveConfigMap(ctx context.Context, cm *corev1.ConfigMap, exists bool) (*corev1.ConfigMap, error) {
	return saveOwn(ctx, &im.writes, im.cfg.Kube.CoreV1().ConfigMaps(cm.Namespace), kindConfigMap, "ConfigMap", cm, exists)
}

// saveSecret creates or updates the agent's Secret (optimistic concurrency).
func (im *Importer) saveSecret(ctx context.Context, s *corev1.Secret, exists bool) (*corev1.Secret, error) {
	return saveOwn(ctx, &im.writes, im.cfg.Kube.CoreV1().Secrets(s.Namespace), kindSecret, "Secret", s, exists)
}

// writer is the part of a typed client saveOwn uses.
type writer[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
	Update(context.Context, T, metav1.UpdateOptions) (T, error)
}

// saveOwn creates or updates obj, one of the agent's objects of kind (what names it in errors),
// and records the write so that its echo is known (echo.go).
func saveOwn[T metav1.Object](ctx context.Context, w *ownWrites, client writer[T], kind, what string, obj T, exists bool) (T, error) {
	var (
		out T
		err error
	)
	w.begin(kind, obj)
	defer w.done(kind, obj)
	if exists {
		out, err = client.Update(ctx, obj, metav1.UpdateOptions{})
	} else {
		out, err = client.Create(ctx, obj, metav1.CreateOptions{})
	}
	if err != nil {
		var none T
		return none, fmt.Errorf("failed to save %s %s/%s: %w", what, obj.GetNamespace(), obj.GetName(), err)
	}
	w.note(kind, out, prevVersion(obj.GetResourceVersion(), exists))
	return out, nil
}

// prevVersion is the resourceVersion a write replaces: none for a create.
func prevVersion(rv string, exists bool) string {
	if !exists {
		return ""
	}
	return rv
}

// deleteOwn deletes the agent's Secret and ConfigMap of a local Elasticsearch.
func (im *Importer) deleteOwn(ctx context.Context, ns, es string) error {
	im.writes.forget(kindSecret, ns, wiring.CredentialsSecretName(es))
	im.writes.forget(kindSecret, ns, wiring.SigningSecretName(es))
	im.writes.forget(kindConfigMap, ns, wiring.CAConfigMapName(es))
	if err := im.cfg.Kube.CoreV1().Secrets(ns).Delete(ctx, wiring.CredentialsSecretName(es), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete Secret %s/%s: %w", ns, wiring.CredentialsSecretName(es), err)
	}
	if err := im.cfg.Kube.CoreV1().Secrets(ns).Delete(ctx, wiring.SigningSecretName(es), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete Secret %s/%s: %w", ns, wiring.SigningSecretName(es), err)
	}
	if err := im.cfg.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, wiring.CAConfigMapName(es), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete ConfigMap %s/%s: %w", ns, wiring.CAConfigMapName(es), err)
	}
	return nil
}
