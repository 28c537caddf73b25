package importer

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
)

// effectiveKeys works out which API key each alias's nodes actually hold in their keystore. ECK
// copies the spec.secureSettings Secrets into <es>-es-secure-settings, and the nodes read that
// at start (ECK rolls them when it changes). A key is in effect once the aggregated Secret holds
// our value and every node started after the aggregated Secret was last written. Aliases that do
// not pass keep the key recorded as in effect before.
func (im *Importer) effectiveKeys(ctx context.Context, client *elastic.Client, ns, es string, secret *corev1.Secret, keyIDs, previous map[string]string) map[string]string {
	out := map[string]string{}
	for alias, id := range previous {
		if _, ok := keyIDs[alias]; ok {
			out[alias] = id
		}
	}
	if secret == nil {
		return out
	}
	agg, err := im.cfg.Kube.CoreV1().Secrets(ns).Get(ctx, es+"-es-secure-settings", metav1.GetOptions{})
	if err != nil {
		return out
	}
	starts, err := client.NodeStartTimes(ctx)
	if err != nil || len(starts) == 0 {
		return out
	}
	// managedFields times have a resolution of one second; a node must have started in a later
	// second to be sure it read the written content.
	written := lastWrite(agg).Add(time.Second)
	for _, started := range starts {
		if started.Before(written) {
			return out
		}
	}
	for alias, id := range keyIDs {
		key := wiring.CredentialsKey(alias)
		if v, ok := agg.Data[key]; ok && string(v) == string(secret.Data[key]) {
			out[alias] = id
		}
	}
	return out
}

// lastWrite is when an object was last written, from its managed fields.
func lastWrite(obj *corev1.Secret) time.Time {
	t := obj.CreationTimestamp.Time
	for _, mf := range obj.ManagedFields {
		if mf.Time != nil && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	return t
}
