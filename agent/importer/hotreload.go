package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
)

// ECK 3.5 file-based secure settings (Elasticsearch >= 9.5 with the annotation
// eck.k8s.elastic.co/file-based-secure-settings: "true"). ECK copies the spec.secureSettings
// Secrets, the agent's credentials Secret among them, into state.cluster_secrets.string_secrets
// of settings.json in Secret <es>-es-file-settings, with a new metadata.version (the time in
// nanoseconds) whenever the content changes, and deletes <es>-es-secure-settings. Elasticsearch
// watches the mounted file and reloads cluster.remote.<alias>.credentials in place: no restart.
// It reports the version it applied, and the errors of one it refused, in GET /_cluster/state
// metadata.reserved_state.file_settings (the agent's monitor privilege covers it).
//
// A key is in effect once settings.json holds it (its version recorded the first time, so that
// later versions for other changes do not move it) and Elasticsearch reports a version at
// least that one as applied. The agent marks the pods when it first sees the new version, so
// that the kubelet refreshes the mounted file at once rather than at its next sync (ECK does
// not mark pods for this Secret).

// maxSettingsJSON bounds the settings.json the agent parses (a Secret holds at most 1 MiB).
const maxSettingsJSON = 1 << 20

// settingsFile is what the agent reads of settings.json.
type settingsFile struct {
	version int64
	secrets map[string]string
}

// parseSettingsFile reads metadata.version and state.cluster_secrets.string_secrets.
func parseSettingsFile(raw []byte) (settingsFile, error) {
	if len(raw) > maxSettingsJSON {
		return settingsFile{}, fmt.Errorf("settings.json is %d bytes, more than %d", len(raw), maxSettingsJSON)
	}
	var f struct {
		Metadata struct {
			Version string `json:"version"`
		} `json:"metadata"`
		State struct {
			ClusterSecrets struct {
				StringSecrets map[string]string `json:"string_secrets"`
			} `json:"cluster_secrets"`
		} `json:"state"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return settingsFile{}, fmt.Errorf("failed to parse settings.json: %w", err)
	}
	v, err := strconv.ParseInt(f.Metadata.Version, 10, 64)
	if err != nil {
		return settingsFile{}, fmt.Errorf("settings.json metadata.version %q is not a number", f.Metadata.Version)
	}
	return settingsFile{version: v, secrets: f.State.ClusterSecrets.StringSecrets}, nil
}

// hotReloadedKeys is effectiveKeys for file-based secure settings. It returns the effective keys
// and the updated records, and leaves what Elasticsearch reported in st for the status.
func (im *Importer) hotReloadedKeys(ctx context.Context, client *elastic.Client, ns, es string, secret *corev1.Secret, records map[string]keystoreRecord, previous map[string]string, st *state) (map[string]string, map[string]keystoreRecord) {
	out := map[string]string{}
	for alias, id := range previous {
		if _, ok := records[alias]; ok {
			out[alias] = id
		}
	}
	for _, r := range st.links {
		r.hasFileVersion, r.fileVersion = false, 0
	}
	// ECK labels the Secret with the cluster name: the informer cache holds it.
	fs, ok := im.cfg.Cache.ECKSecret(ns, eck.FileSettingsSecret(es))
	if !ok {
		var err error
		if fs, err = im.cfg.Kube.CoreV1().Secrets(ns).Get(ctx, eck.FileSettingsSecret(es), metav1.GetOptions{}); err != nil {
			return out, records
		}
	}
	file, err := parseSettingsFile(fs.Data[eck.FileSettingsKey])
	if err != nil {
		im.log.Warn("cannot read ECK's file settings", "elasticsearch", ns+"/"+es, "error", err)
		return out, records
	}
	newVersion := false
	for alias, rec := range records {
		key := wiring.CredentialsKey(alias)
		if rec.FileVersion == nil && len(secret.Data[key]) > 0 && file.secrets[key] == string(secret.Data[key]) {
			v := file.version
			rec.FileVersion = &v
			records[alias] = rec
			newVersion = true
		}
		if rec.FileVersion != nil {
			r := st.link(alias)
			r.hasFileVersion, r.fileVersion = true, *rec.FileVersion
		}
	}
	if newVersion {
		im.markPods(types.NamespacedName{Namespace: ns, Name: es}) // pods.go
	}
	applied, err := client.FileSettings(ctx)
	if err != nil {
		im.log.Debug("cannot read the applied file settings", "elasticsearch", ns+"/"+es, "error", err)
		return out, records
	}
	st.fileSettings = applied
	for alias, rec := range records {
		key := wiring.CredentialsKey(alias)
		if rec.FileVersion == nil || file.secrets[key] != string(secret.Data[key]) {
			continue
		}
		if applied.Applied && applied.Version >= *rec.FileVersion {
			out[alias] = rec.KeyID
		}
	}
	return out, records
}

// hotReloadWait says why a key written for file-based secure settings is not in effect yet.
func hotReloadWait(st *state, alias, keyID, secret, es string) string {
	r := st.link(alias)
	v, ok := r.fileVersion, r.hasFileVersion
	switch {
	case !ok:
		return fmt.Sprintf("API key %s written to Secret %s; waiting for ECK to write it into Secret %s (file-based secure settings, no restart)",
			keyID, secret, eck.FileSettingsSecret(es))
	case st.fileSettings == nil:
		return fmt.Sprintf("API key %s in file settings version %d; Elasticsearch's applied file settings version is unknown (GET /_cluster/state failed)", keyID, v)
	case st.fileSettings.ErrorVersion >= v && len(st.fileSettings.Errors) > 0:
		// The error texts stay out: they may quote the file, which holds secrets.
		return fmt.Sprintf("API key %s in file settings version %d; Elasticsearch refused version %d (%s error; its log and GET /_cluster/state say why)",
			keyID, v, st.fileSettings.ErrorVersion, st.fileSettings.ErrorKind)
	default:
		return fmt.Sprintf("API key %s in file settings version %d; waiting for Elasticsearch to reload it without a restart (it reports version %d applied)",
			keyID, v, st.fileSettings.Version)
	}
}
