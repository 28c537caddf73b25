package importer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/test/esim"
)

// fileSettingsJSON is settings.json as ECK 3.5 writes it (read from the test bed).
func fileSettingsJSON(version int64, secrets map[string]string) []byte {
	var parts []string
	for k, v := range secrets {
		parts = append(parts, fmt.Sprintf("%q:%q", k, v))
	}
	return []byte(fmt.Sprintf(`{"metadata":{"version":"%d","compatibility":"8.6.1"},"state":{"cluster_settings":{},"cluster_secrets":{"string_secrets":{%s}},`+
		`"snapshot_repositories":{},"slm":{},"role_mappings":{},"ilm":{},"ingest_pipelines":{},"index_templates":{"component_templates":{},"composable_index_templates":{}}}}`,
		version, strings.Join(parts, ",")))
}

// TestHotReloadedKeys: with file-based secure settings a key is in effect once ECK's
// settings.json holds it and Elasticsearch reports that version (or a later one) applied, with no
// node restart (nothing reads node start times here); the version that first held the key is recorded once; a new key waits for its
// own version; a refused version is reported without the error text.
func TestHotReloadedKeys(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	alias, key := "west-logs", wiring.CredentialsKey("west-logs")
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: wiring.CredentialsSecretName(fxES)}, Data: map[string][]byte{key: []byte("encoded-1")}}
	fs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: eck.FileSettingsSecret(fxES), Labels: map[string]string{eck.ClusterNameLabel: fxES}},
		Data: map[string][]byte{eck.FileSettingsKey: fileSettingsJSON(100, nil)}}
	if _, err := f.kc.CoreV1().Secrets(fxNS).Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeFile := func(version int64, value string) {
		t.Helper()
		fs.Data[eck.FileSettingsKey] = fileSettingsJSON(version, map[string]string{key: value})
		if _, err := f.kc.CoreV1().Secrets(fxNS).Update(ctx, fs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitCache(t, func() bool {
			s, ok := f.im.cfg.Cache.ECKSecret(fxNS, eck.FileSettingsSecret(fxES))
			return ok && string(s.Data[eck.FileSettingsKey]) == string(fs.Data[eck.FileSettingsKey])
		})
	}
	records := map[string]keystoreRecord{alias: {KeyID: "k1", WrittenAt: time.Now()}}
	step := func(name string, previous map[string]string, wantEffective, wantReason string) *state {
		t.Helper()
		st := &state{esFound: true, wired: true, fileBased: true, links: map[string]*linkResult{alias: {hasKey: true, keyID: records[alias].KeyID}}}
		var eff map[string]string
		eff, records = f.im.hotReloadedKeys(ctx, f.es, fxNS, fxES, creds, records, previous, st)
		st.setEffective(eff)
		if eff[alias] != wantEffective {
			t.Errorf("%s: effective %q, want %q", name, eff[alias], wantEffective)
		}
		rc := remoteCluster(alias, v1alpha1.SecurityModelAPIKey)
		p := &linkPlan{rc: rc, model: modelOf(rc), answer: &received{peer: fxPeer, creds: nil}}
		p.id.Alias = alias
		for _, c := range f.im.conditions(p, st) {
			if c.Type == v1alpha1.ConditionCredentialsApplied && c.Reason != wantReason {
				t.Errorf("%s: CredentialsApplied %s (%s), want %s", name, c.Reason, c.Message, wantReason)
			}
			if c.Type == v1alpha1.ConditionCredentialsApplied && strings.Contains(c.Message, "encoded-") {
				t.Errorf("%s: the message holds the key value: %s", name, c.Message)
			}
		}
		return st
	}

	step("ECK has not written the key yet", nil, "", v1alpha1.ReasonElasticsearchReloading)
	if records[alias].FileVersion != nil {
		t.Fatalf("file version recorded before settings.json held the key: %d", *records[alias].FileVersion)
	}
	writeFile(200, "encoded-1")
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 100})
	st := step("in settings.json, not applied", nil, "", v1alpha1.ReasonElasticsearchReloading)
	if v := records[alias].FileVersion; v == nil || *v != 200 {
		t.Fatalf("file version %v, want 200", v)
	}
	if msg := hotReloadWait(st, alias, "k1", "s", fxES); !strings.Contains(msg, "version 200") || !strings.Contains(msg, "reports version 100") {
		t.Errorf("waiting message: %s", msg)
	}
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 200})
	step("applied", nil, "k1", v1alpha1.ReasonHotReloaded)

	// A later version for another change does not move the recorded one.
	writeFile(300, "encoded-1")
	step("later version", map[string]string{alias: "k1"}, "k1", v1alpha1.ReasonHotReloaded)
	if v := records[alias].FileVersion; *v != 200 {
		t.Errorf("file version moved to %d", *v)
	}

	// Rotation: the new key waits for its own version; until then the old one stays in effect.
	creds.Data[key] = []byte("encoded-2")
	records[alias] = keystoreRecord{KeyID: "k2", WrittenAt: time.Now()}
	step("new key written", map[string]string{alias: "k1"}, "k1", v1alpha1.ReasonElasticsearchReloading)
	writeFile(400, "encoded-2")
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 300, Errors: &esim.FileSettingsErrors{Version: 400, ErrorKind: "validation", Errors: []string{"secret encoded-2 rejected"}}})
	st = step("refused", map[string]string{alias: "k1"}, "k1", v1alpha1.ReasonElasticsearchReloading)
	if msg := hotReloadWait(st, alias, "k2", "s", fxES); !strings.Contains(msg, "refused version 400 (validation") || strings.Contains(msg, "encoded-2") {
		t.Errorf("refused message: %s", msg)
	}
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 400})
	step("new key applied", map[string]string{alias: "k1"}, "k2", v1alpha1.ReasonHotReloaded)
}
