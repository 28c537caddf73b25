package importer

import (
	"strings"
	"testing"

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
	secrets := f.kc.CoreV1().Secrets(fxNS)
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
			if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", newTestCA(t, "west-transport"))); err != nil {
				t.Fatal(err)
			}
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
