package pod

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// ECK 3.5's file-based secure settings (Elasticsearch >= 9.5 with the annotation
// eck.k8s.elastic.co/file-based-secure-settings: "true"; driver/stateful/keystore.go
// reconcileSecureSettings). ECK then writes every spec.secureSettings entry (and its own remote
// API keys) as a string under state.cluster_secrets.string_secrets of key settings.json of the
// Secret <es>-es-file-settings, sets metadata.version to the time in nanoseconds whenever the
// state changes, and deletes <es>-es-secure-settings: there is no keystore init container. The
// Secret is mounted at config/operator; Elasticsearch's FileSettingsService watches the file and
// applies a version above the one in the cluster state (reserved_state.file_settings), and the
// cluster secrets listener reloads the reloadable secure settings (cluster.remote.<alias>.
// credentials) in place: no restart. A file it cannot parse leaves the applied state and
// reports the error under reserved_state.file_settings.errors.

// fileSettingsSecret is the Secret ECK writes the file-based settings into.
func (p *Pod) fileSettingsSecret() string { return p.opts.Name + "-es-file-settings" }

// fileBasedSecure reports whether the running pod takes its secure settings from the
// file-based settings (ECK 3.5, ES >= 9.5, annotation "true").
func (s podSpec) fileBasedSecure() bool { return s.FileBasedSecure && atLeast(s.Version, 9, 5) }

// settingsFile is the part of settings.json the model reads.
type settingsFile struct {
	Metadata struct {
		Version       string `json:"version"`
		Compatibility string `json:"compatibility"`
	} `json:"metadata"`
	State map[string]json.RawMessage `json:"state"`
}

// parseSettingsFile returns the version and the cluster secrets of settings.json.
func parseSettingsFile(raw []byte) (int64, map[string][]byte, error) {
	var f settingsFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, nil, fmt.Errorf("failed to parse settings.json: %w", err)
	}
	v, err := strconv.ParseInt(f.Metadata.Version, 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to parse settings.json: metadata.version [%s] is not a number", f.Metadata.Version)
	}
	secrets := map[string][]byte{}
	if raw, ok := f.State["cluster_secrets"]; ok {
		var cs struct {
			StringSecrets map[string]string `json:"string_secrets"`
		}
		if err := json.Unmarshal(raw, &cs); err != nil {
			return v, nil, fmt.Errorf("failed to parse settings.json: state.cluster_secrets: %w", err)
		}
		for k, s := range cs.StringSecrets {
			secrets[k] = []byte(s)
		}
	}
	return v, secrets, nil
}

// fileSettingsState is what the node applied of the file-based settings.
type fileSettingsState struct {
	// raw is the settings.json last processed (applied or refused).
	raw     string
	version int64
	applied bool
}

// applyFileSettingsLocked processes settings.json as the pod's files show it now: a new
// version above the applied one replaces the cluster secrets in place (no restart). It returns
// whether the secrets changed.
func (p *Pod) applyFileSettingsLocked(now time.Time, starting bool) bool {
	if !p.running.fileBasedSecure() {
		return false
	}
	data, ok := p.view.visible(objectKey("secret", p.fileSettingsSecret()), now)
	raw := string(data["settings.json"])
	if !ok || raw == "" || raw == p.fileState.raw {
		return false
	}
	p.fileState.raw = raw
	version, secrets, err := parseSettingsFile([]byte(raw))
	if err != nil {
		p.log.Warn("file settings refused", "error", err)
		fs := p.reportedFileSettings()
		fs.Errors = &esim.FileSettingsErrors{Version: version, ErrorKind: "parsing", Errors: []string{err.Error()}}
		p.node.SetFileSettings(fs)
		return false
	}
	if p.fileState.applied && version <= p.fileState.version && !starting {
		// ES: "Not updating cluster state because version [..] is less or equal to the current
		// metadata version".
		return false
	}
	p.fileState.version, p.fileState.applied = version, true
	p.loadKeystoreLocked(secrets)
	p.node.SetFileSettings(&esim.FileSettingsState{Version: version, Handlers: []string{"cluster_secrets", "cluster_settings"}})
	if starting {
		p.log.Info("file settings applied at start", "version", version, "keystore_entries", len(p.keystore))
		return true
	}
	p.reloads++
	p.log.Info("file settings applied, secure settings reloaded", "version", version, "keystore_entries", len(p.keystore))
	return true
}

// reportedFileSettings is the current reserved_state.file_settings, or a new one.
func (p *Pod) reportedFileSettings() *esim.FileSettingsState {
	if fs := p.node.FileSettings(); fs != nil {
		return fs
	}
	return &esim.FileSettingsState{Version: -1}
}

// Restarts returns how many times the pod was restarted (rolling restarts, not the first start).
func (p *Pod) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// SecureSettingsReloads returns how many times the node applied a new version of the
// file-based secure settings in place.
func (p *Pod) SecureSettingsReloads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reloads
}
