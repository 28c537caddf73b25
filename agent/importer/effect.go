package importer

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
)

const (
	// annotationKeystore records, per alias, when the agent wrote its key into the credentials
	// Secret and when ECK's aggregated Secret first held it (JSON map alias -> keystoreRecord).
	annotationKeystore = "ecklink.io/keystore"
	// aggregationGrace bounds how long ECK takes to copy a changed secure-settings Secret into
	// <es>-es-secure-settings; a node that started sooner after our write may hold the old value.
	aggregationGrace = 2 * time.Second
)

// keystoreRecord tracks one alias's key on its way into the nodes' keystores.
type keystoreRecord struct {
	KeyID     string     `json:"keyId"`
	WrittenAt time.Time  `json:"writtenAt"`
	SyncedAt  *time.Time `json:"syncedAt,omitempty"`
	// FileVersion is, with file-based secure settings, the metadata.version of the first
	// settings.json that held the key (hotreload.go).
	FileVersion *int64 `json:"fileVersion,omitempty"`
}

func readKeystore(ann map[string]string) map[string]keystoreRecord {
	out := map[string]keystoreRecord{}
	if raw := ann[annotationKeystore]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &out)
	}
	return out
}

// effectiveKeys works out which API key each alias's nodes actually hold in their keystore. ECK
// copies the spec.secureSettings Secrets into <es>-es-secure-settings, and the nodes read that at
// start (ECK rolls them when it changes). A key is in effect once the aggregated Secret holds it
// and every node started after both our write (plus ECK's aggregation grace) and the aggregated
// Secret's write that first held it (recorded once: ECK's later metadata-only updates of that
// Secret must not move it). Aliases that do not pass keep the key recorded as in effect before.
// It returns the effective keys and the updated records.
func (im *Importer) effectiveKeys(ctx context.Context, client *elastic.Client, ns, es string, secret *corev1.Secret, records map[string]keystoreRecord, previous map[string]string) (map[string]string, map[string]keystoreRecord) {
	out := map[string]string{}
	for alias, id := range previous {
		if _, ok := records[alias]; ok {
			out[alias] = id
		}
	}
	// ECK labels the aggregated Secret as its own: the informer cache holds it.
	agg, ok := im.cfg.Cache.ECKSecret(ns, eck.SecureSettingsSecret(es))
	if !ok {
		var err error
		if agg, err = im.cfg.Kube.CoreV1().Secrets(ns).Get(ctx, eck.SecureSettingsSecret(es), metav1.GetOptions{}); err != nil {
			return out, records
		}
	}
	for alias, rec := range records {
		key := wiring.CredentialsKey(alias)
		if rec.SyncedAt == nil {
			if v, ok := agg.Data[key]; ok && string(v) == string(secret.Data[key]) {
				t := lastWrite(agg)
				rec.SyncedAt = &t
				records[alias] = rec
			}
		}
	}
	starts, err := client.NodeStartTimes(ctx)
	if err != nil || len(starts) == 0 {
		return out, records
	}
	for alias, rec := range records {
		key := wiring.CredentialsKey(alias)
		if rec.SyncedAt == nil || string(agg.Data[key]) != string(secret.Data[key]) {
			continue
		}
		// managedFields times have a resolution of one second.
		after := rec.WrittenAt.Add(aggregationGrace)
		if synced := rec.SyncedAt.Add(time.Second); synced.After(after) {
			after = synced
		}
		restarted := true
		for _, started := range starts {
			if started.Before(after) {
				restarted = false
			}
		}
		if restarted {
			out[alias] = rec.KeyID
		}
	}
	return out, records
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
