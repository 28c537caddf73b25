package importer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// TestKeyInEffectAfterTheRestart: a key written into the credentials Secret is in effect (the
// peer is told, so it can invalidate the old one) only once ECK's aggregated secure settings hold
// it and every node started after that; until then CredentialsApplied says the cluster is
// restarting and the link status names no applied key.
func TestKeyInEffectAfterTheRestart(t *testing.T) {
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	for _, tc := range []struct {
		name string
		// aggregated: ECK copied the key into <es>-es-secure-settings; started: the nodes'
		// start, relative to now.
		aggregated bool
		started    time.Duration
		inEffect   bool
	}{
		{name: "ECK has not copied the key", started: time.Minute},
		{name: "copied, nodes not restarted", aggregated: true, started: -time.Minute},
		{name: "copied, nodes restarted after", aggregated: true, started: time.Minute, inEffect: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAppliedFixture(t)
			if tc.aggregated {
				now := metav1.Now()
				if _, err := f.Kube.CoreV1().Secrets(fxNS).Create(t.Context(), &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: eck.SecureSettingsSecret(fxES), Labels: map[string]string{eck.ClusterNameLabel: fxES},
						CreationTimestamp: now, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "elastic-operator", Time: &now}}},
					Data: map[string][]byte{wiring.CredentialsKey("logs"): []byte(encodedKey("key-1"))},
				}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			f.node.SetStartTime(time.Now().Add(tc.started))
			f.reconcile(t)
			ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
			reason := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]
			if tc.inEffect {
				if ls.GetAppliedApiKeyId() != "key-1" || reason != v1alpha1.ReasonApplied {
					t.Errorf("applied key %q, CredentialsApplied %q: want key-1 in effect, Applied", ls.GetAppliedApiKeyId(), reason)
				}
				return
			}
			if ls.GetAppliedApiKeyId() != "" || ls.GetWrittenApiKeyId() != "key-1" || reason != v1alpha1.ReasonElasticsearchRestarting {
				t.Errorf("applied %q written %q, CredentialsApplied %q: want key-1 written, not in effect, ElasticsearchRestarting",
					ls.GetAppliedApiKeyId(), ls.GetWrittenApiKeyId(), reason)
			}
		})
	}
}

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
	if _, err := f.Kube.CoreV1().Secrets(fxNS).Create(ctx, fs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeFile := func(version int64, value string) {
		t.Helper()
		fs.Data[eck.FileSettingsKey] = fileSettingsJSON(version, map[string]string{key: value})
		if _, err := f.Kube.CoreV1().Secrets(fxNS).Update(ctx, fs, metav1.UpdateOptions{}); err != nil {
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

// File-based secure settings (ECK 3.5, Elasticsearch 9.5+) through the full reconcile: a key
// written into the credentials Secret is in effect, and the peer told so, only once ECK's
// settings.json holds it and Elasticsearch reports that version applied; until then, and when
// Elasticsearch refuses the version or cannot say, CredentialsApplied says why and the link status
// names the key written but none applied. No restart is waited for.

// fileBasedES turns the fixture's Elasticsearch into a 9.5 one with file-based secure settings.
func (f *fixture) fileBasedES(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	res := f.im.cfg.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(fxNS)
	es, err := res.Get(ctx, fxES, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ann := es.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[eck.FileBasedSecureSettingsAnnotation] = "true"
	es.SetAnnotations(ann)
	if err := unstructured.SetNestedField(es.Object, "9.5.0", "spec", "version"); err != nil {
		t.Fatal(err)
	}
	if _, err = res.Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		got, ok := f.im.cfg.Cache.Elasticsearch(fxNS, fxES)
		if !ok {
			return false
		}
		v, _, _ := unstructured.NestedString(got.Object, "spec", "version")
		return v == "9.5.0"
	})
}

// writeFileSettings writes <es>-es-file-settings as ECK does and waits for the cache.
func (f *fixture) writeFileSettings(t *testing.T, raw []byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: eck.FileSettingsSecret(fxES), Labels: map[string]string{eck.ClusterNameLabel: fxES}},
		Data: map[string][]byte{eck.FileSettingsKey: raw}}
	secrets := f.Kube.CoreV1().Secrets(fxNS)
	if _, err := secrets.Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
		if _, err := secrets.Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitCache(t, func() bool {
		got, ok := f.im.cfg.Cache.ECKSecret(fxNS, s.Name)
		return ok && string(got.Data[eck.FileSettingsKey]) == string(raw)
	})
}

// TestHotReloadThroughThePass: each state of ECK's settings.json and of what Elasticsearch
// reports applied, after a pass that wrote key-1.
func TestHotReloadThroughThePass(t *testing.T) {
	key := wiring.CredentialsKey("logs")
	holding := func(version int64) []byte {
		return fileSettingsJSON(version, map[string]string{key: encodedKey("key-1")})
	}
	for _, tc := range []struct {
		name    string
		file    []byte // settings.json; nil: ECK has not written the Secret
		applied *esim.FileSettingsState
		fault   *esim.Fault
		// inEffect: key-1 is applied (link status, Applied); else message holds the why.
		inEffect bool
		message  string
	}{
		{name: "ECK has not written file settings", message: "waiting for ECK to write it into Secret " + eck.FileSettingsSecret(fxES)},
		{name: "settings.json without the key", file: fileSettingsJSON(150, nil), applied: &esim.FileSettingsState{Version: 150},
			message: "waiting for ECK"},
		{name: "settings.json not JSON", file: []byte("{not json"), message: "waiting for ECK"},
		{name: "in settings.json, an older version applied", file: holding(200), applied: &esim.FileSettingsState{Version: 150},
			message: "waiting for Elasticsearch to reload it without a restart (it reports version 150 applied)"},
		{name: "in settings.json, that version refused", file: holding(200),
			applied: &esim.FileSettingsState{Version: 150, Errors: &esim.FileSettingsErrors{Version: 200, ErrorKind: "validation", Errors: []string{"bad " + encodedKey("key-1")}}},
			message: "Elasticsearch refused version 200 (validation error"},
		{name: "in settings.json, applied state unreadable", file: holding(200), applied: &esim.FileSettingsState{Version: 200},
			fault: &esim.Fault{Method: "GET", Prefix: "/_cluster/state", Status: 500, ErrType: "exception"}, message: "applied file settings version is unknown"},
		{name: "in settings.json, that version applied", file: holding(200), applied: &esim.FileSettingsState{Version: 200}, inEffect: true},
		{name: "in settings.json, a later version applied", file: holding(200), applied: &esim.FileSettingsState{Version: 250}, inEffect: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			f.fileBasedES(t)
			f.sendKey(t, "logs", "key-1")
			f.reconcile(t)
			f.settle(t)
			if f.applied(t).key("logs") != encodedKey("key-1") {
				t.Fatal("key-1 not written to the credentials Secret")
			}
			if tc.file != nil {
				f.writeFileSettings(t, tc.file)
			}
			if tc.applied != nil {
				f.node.SetFileSettings(tc.applied)
			}
			if tc.fault != nil {
				f.faults.Set(*tc.fault)
			}
			f.reconcile(t)

			id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
			ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
			c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionCredentialsApplied)
			if c == nil {
				t.Fatal("no CredentialsApplied condition")
			}
			if strings.Contains(c.Message, encodedKey("key-1")) {
				t.Errorf("the condition quotes the key: %s", c.Message)
			}
			if tc.inEffect {
				if ls.GetAppliedApiKeyId() != "key-1" || c.Reason != v1alpha1.ReasonHotReloaded {
					t.Errorf("applied %q, CredentialsApplied %s (%s): want key-1 in effect, HotReloaded", ls.GetAppliedApiKeyId(), c.Reason, c.Message)
				}
				return
			}
			if ls.GetAppliedApiKeyId() != "" || ls.GetWrittenApiKeyId() != "key-1" {
				t.Errorf("link status applied %q written %q: want key-1 written, none applied", ls.GetAppliedApiKeyId(), ls.GetWrittenApiKeyId())
			}
			if c.Reason != v1alpha1.ReasonElasticsearchReloading || !strings.Contains(c.Message, tc.message) {
				t.Errorf("CredentialsApplied %s (%s), want ElasticsearchReloading saying %q", c.Reason, c.Message, tc.message)
			}
		})
	}
}

// TestHotReloadRotation: a rotated key waits for the settings.json version that holds it, and
// the key in effect stays the old one until Elasticsearch applies that version; no restart of the
// nodes is needed for either.
func TestHotReloadRotation(t *testing.T) {
	key := wiring.CredentialsKey("logs")
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	f.fileBasedES(t)
	ca := newTestCA(t, "west-transport")
	if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", ca)); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	f.settle(t)
	f.writeFileSettings(t, fileSettingsJSON(200, map[string]string{key: encodedKey("key-1")}))
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 200})
	f.reconcile(t)
	status := func() *peerv1.LinkStatus {
		ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
		return ls
	}
	if status().GetAppliedApiKeyId() != "key-1" {
		t.Fatalf("key-1 not in effect: %v", status())
	}

	if err := f.im.OnCredentials(fxPeer, 2, apiKeyCredentials("logs", "key-2", ca)); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	f.reconcile(t)
	if ls := status(); ls.GetAppliedApiKeyId() != "key-1" || ls.GetWrittenApiKeyId() != "key-2" {
		t.Errorf("after the rotation: applied %q written %q, want key-1 in effect and key-2 written", ls.GetAppliedApiKeyId(), ls.GetWrittenApiKeyId())
	}
	f.writeFileSettings(t, fileSettingsJSON(300, map[string]string{key: encodedKey("key-2")}))
	f.settle(t)
	f.reconcile(t)
	if ls := status(); ls.GetAppliedApiKeyId() != "key-1" {
		t.Errorf("key-2 in effect (%q) before Elasticsearch applied version 300", ls.GetAppliedApiKeyId())
	}
	f.node.SetFileSettings(&esim.FileSettingsState{Version: 300})
	f.reconcile(t)
	if ls := status(); ls.GetAppliedApiKeyId() != "key-2" {
		t.Errorf("applied %q once version 300 is applied, want key-2", ls.GetAppliedApiKeyId())
	}
}
