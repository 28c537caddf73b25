package wiring

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// The CA ConfigMap of a local Elasticsearch holds CAFileKey, the combined bundle the nodes
// read, and the CAs retained for each alias. The links of one exported Elasticsearch hold the
// same CAs, so a bundle is stored once, under a key named by its content (CAEntryKey), and
// AnnotationCAEntries maps each alias to the key it uses: at 50 links to one Elasticsearch the
// ConfigMap holds one copy, not 50, and a CA update rewrites a few KB.

// AnnotationCAEntries on the CA ConfigMap maps alias -> key of the bundle it uses (JSON).
const AnnotationCAEntries = "ecklink.io/ca-entries"

// caEntryPrefix starts every stored bundle's key; the combined file is CAFileKey.
const caEntryPrefix = "src-"

// CAEntryKey is the key a bundle is stored under: a short digest of its content, so aliases
// holding the same CAs share one entry and a key never names two different bundles.
func CAEntryKey(bundle string) string {
	sum := sha256.Sum256([]byte(bundle))
	return caEntryPrefix + hex.EncodeToString(sum[:8]) + ".crt"
}

// CABundleData is the ConfigMap content for the bundles of every alias (alias -> PEM): one
// entry per distinct bundle, and the AnnotationCAEntries value. The caller adds CAFileKey.
func CABundleData(bundles map[string]string) (data map[string]string, index string) {
	data = make(map[string]string, len(bundles)+1)
	keys := make(map[string]string, len(bundles))
	named := map[string]string{} // bundle -> key: each distinct bundle is hashed once
	for alias, bundle := range bundles {
		k, ok := named[bundle]
		if !ok {
			k = CAEntryKey(bundle)
			named[bundle] = k
			data[k] = bundle
		}
		keys[alias] = k
	}
	raw, _ := json.Marshal(keys) // map keys are sorted: the annotation is stable
	return data, string(raw)
}

// AliasCABundles reads the bundle each alias uses (alias -> PEM) from a CA ConfigMap, in
// either layout (CAEntries).
func AliasCABundles(data, annotations map[string]string) map[string]string {
	out := map[string]string{}
	for alias, k := range CAEntries(data, annotations) {
		if v := data[k]; v != "" {
			out[alias] = v
		}
	}
	return out
}

// CAEntries maps each alias to the key of the bundle it uses in a CA ConfigMap. A ConfigMap
// without AnnotationCAEntries is in the layout of release 0.1.0 (one <alias>.crt key per
// alias), read the same way so that no retained CA is lost on upgrade.
func CAEntries(data, annotations map[string]string) map[string]string {
	keys := map[string]string{}
	raw, ok := annotations[AnnotationCAEntries]
	if !ok {
		for k := range data {
			if alias, ok := strings.CutSuffix(k, ".crt"); ok && k != CAFileKey {
				keys[alias] = k
			}
		}
		return keys
	}
	_ = json.Unmarshal([]byte(raw), &keys) // an unreadable index holds nothing to retain
	return keys
}
