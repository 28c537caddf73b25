package importer

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestChangedAnswerReachesElasticsearch: after a first answer is applied, each kind of change
// the peer (or the RemoteCluster) makes reaches exactly what it concerns: a rotated key the
// Secret (the settings stay), a moved address the settings (the Secret stays), a renewed CA the
// ConfigMap with the previous CA kept for the nodes still using it, skipUnavailable the
// settings; the peer's link status names the key written.
func TestChangedAnswerReachesElasticsearch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change returns the next credentials (nil: none) after changing what it changes.
		change func(t *testing.T, f *fixture, prev *peerv1.Credentials) *peerv1.Credentials
		check  func(t *testing.T, before, after applied, prev *peerv1.Credentials)
	}{
		{name: "key rotated",
			change: func(t *testing.T, f *fixture, prev *peerv1.Credentials) *peerv1.Credentials {
				return apiKeyCredentials("logs", "key-2", prev.GetCaBundle())
			},
			check: func(t *testing.T, before, after applied, _ *peerv1.Credentials) {
				if after.key("logs") != encodedKey("key-2") || after.keyID("logs") != "key-2" {
					t.Errorf("Secret holds %q (id %q), want key-2", after.key("logs"), after.keyID("logs"))
				}
				if after.settings["logs"].ProxyAddress != before.settings["logs"].ProxyAddress {
					t.Error("the settings moved with a key rotation")
				}
			}},
		{name: "address moved",
			change: func(t *testing.T, f *fixture, prev *peerv1.Credentials) *peerv1.Credentials {
				c := apiKeyCredentials("logs", "key-1", prev.GetCaBundle())
				c.ProxyAddress, c.ServerName = "198.51.100.4:9443", "logs-2.west.example"
				return c
			},
			check: func(t *testing.T, before, after applied, _ *peerv1.Credentials) {
				if s := after.settings["logs"]; s.ProxyAddress != "198.51.100.4:9443" || s.ServerName != "logs-2.west.example" {
					t.Errorf("settings %+v, want the new address and server name", s)
				}
				if after.secret.ResourceVersion != before.secret.ResourceVersion {
					t.Error("the Secret was written for an address change")
				}
			}},
		{name: "CA renewed with the key",
			change: func(t *testing.T, f *fixture, prev *peerv1.Credentials) *peerv1.Credentials {
				return apiKeyCredentials("logs", "key-2", newTestCA(t, "renewed"))
			},
			check: func(t *testing.T, before, after applied, prev *peerv1.Credentials) {
				got := after.caFingerprints(t, "logs")
				if len(got) != 2 || got[1] != testenv.Fingerprint(t, prev.GetCaBundle()) {
					t.Errorf("CAs %v: want the renewed CA first and the previous one kept", got)
				}
			}},
		{name: "skipUnavailable set",
			change: func(t *testing.T, f *fixture, prev *peerv1.Credentials) *peerv1.Credentials {
				rc := f.remoteCluster(t, "logs")
				rc.Spec.SkipUnavailable = new(true)
				if _, err := f.CRDs.RemoteClusters().Update(t.Context(), rc); err != nil {
					t.Fatal(err)
				}
				waitCache(t, func() bool {
					rcs := f.im.cfg.Cache.RemoteClustersShared()
					return len(rcs) == 1 && rcs[0].Spec.SkipUnavailable != nil
				})
				return nil
			},
			check: func(t *testing.T, before, after applied, _ *peerv1.Credentials) {
				if !after.settings["logs"].SkipUnavailable {
					t.Error("skip_unavailable not set")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			first := apiKeyCredentials("logs", "key-1", newTestCA(t, "west-transport"))
			if err := f.im.OnCredentials(fxPeer, 1, first); err != nil {
				t.Fatal(err)
			}
			f.reconcile(t)
			f.settle(t)
			before := f.applied(t)
			if next := tc.change(t, f, first); next != nil {
				if err := f.im.OnCredentials(fxPeer, 2, next); err != nil {
					t.Fatalf("changed credentials refused: %v", err)
				}
			}
			f.reconcile(t)
			after := f.applied(t)
			tc.check(t, before, after, first)
			id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
			if ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus); ls.GetWrittenApiKeyId() != after.keyID("logs") {
				t.Errorf("link status names key %q written, the Secret holds %q", ls.GetWrittenApiKeyId(), after.keyID("logs"))
			}
		})
	}
}

// TestManualWiring: a RemoteCluster asking for manual wiring keeps the agent's hands off the
// Elasticsearch resource: the Secret and ConfigMap are written, the snippet to apply is in the
// status, TrustApplied says ManualWiringRequired, and no settings are written until the user
// applied the snippet.
func TestManualWiring(t *testing.T) {
	rc := remoteCluster("logs", "")
	rc.Spec.Wiring = v1alpha1.WiringManual
	f := newFixture(t, rc)
	f.sendKey(t, "logs", "key-1")
	before := f.applied(t)
	f.reconcile(t)
	a := f.applied(t)
	if a.es.GetResourceVersion() != before.es.GetResourceVersion() {
		t.Error("the agent edited an Elasticsearch whose wiring is manual")
	}
	if a.key("logs") == "" || a.cm == nil {
		t.Errorf("Secret %v, ConfigMap %v: want both written for the user's wiring to mount", a.key("logs") != "", a.cm != nil)
	}
	if len(a.settings) != 0 {
		t.Errorf("settings %v written before the wiring is applied", a.settings)
	}
	got := f.remoteCluster(t, "logs")
	if !strings.Contains(got.Status.WiringSnippet, wiring.CredentialsSecretName(fxES)) || !strings.Contains(got.Status.WiringSnippet, wiring.CAConfigMapName(fxES)) {
		t.Errorf("wiring snippet %q does not name the Secret and ConfigMap", got.Status.WiringSnippet)
	}
	if r := f.reasons(t, "logs")[v1alpha1.ConditionTrustApplied]; r != v1alpha1.ReasonManualWiringRequired {
		t.Errorf("TrustApplied reason %q, want ManualWiringRequired", r)
	}
}

// TestAliasConflicts: of two RemoteClusters with one alias the older gets it and the newer is
// told who holds it; an alias someone else configured in Elasticsearch is never taken over.
func TestAliasConflicts(t *testing.T) {
	t.Run("two RemoteClusters", func(t *testing.T) {
		older, newer := remoteCluster("logs", ""), remoteCluster("logs", "")
		newer.Name = "logs-again"
		newer.CreationTimestamp = metav1.NewTime(older.CreationTimestamp.Add(1e9))
		f := newFixture(t, older, newer)
		f.sendKey(t, "logs", "key-1")
		f.reconcile(t)
		if _, ok := f.applied(t).settings["logs"]; !ok {
			t.Error("the older RemoteCluster did not get its alias")
		}
		if r := f.reasons(t, "logs")[v1alpha1.ConditionSettingsApplied]; r != v1alpha1.ReasonApplied {
			t.Errorf("older: SettingsApplied %q, want Applied", r)
		}
		c := condition(f.remoteCluster(t, "logs-again"), v1alpha1.ConditionSettingsApplied)
		if c == nil || c.Reason != v1alpha1.ReasonAliasConflict || !strings.Contains(c.Message, "already used by RemoteCluster logs") {
			t.Errorf("newer: SettingsApplied %+v, want AliasConflict naming logs", c)
		}
	})
	t.Run("configured by someone else", func(t *testing.T) {
		f := newFixture(t, remoteCluster("logs", ""))
		if _, err := f.es.PutRemote(t.Context(), "logs", elastic.RemoteSettings{Mode: "proxy", ProxyAddress: "192.0.2.1:9443"}); err != nil {
			t.Fatal(err)
		}
		f.sendKey(t, "logs", "key-1")
		f.reconcile(t)
		if s := f.applied(t).settings["logs"]; s.ProxyAddress != "192.0.2.1:9443" {
			t.Errorf("the user's alias was overwritten: %+v", s)
		}
		if r := f.reasons(t, "logs")[v1alpha1.ConditionSettingsApplied]; r != v1alpha1.ReasonAliasConflict {
			t.Errorf("SettingsApplied %q, want AliasConflict", r)
		}
	})
}

// TestPeerRefusal: a Refusal of the peer becomes the RemoteCluster's conditions (reason and the
// peer's message, cleaned) and withdraws what the link had applied; a Refusal whose reason is
// not a condition reason is refused itself.
func TestPeerRefusal(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	l := &peerv1.Link{LocalNamespace: fxNS, LocalElasticsearch: fxES, Alias: "logs"}
	f.sendKey(t, "logs", "key-1")
	f.reconcile(t)
	f.settle(t)

	err := f.im.OnRefusal(fxPeer, 2, &peerv1.Refusal{Link: l, Reason: "Not a reason!", Message: "x"})
	checkRefusal(t, err, "InvalidRefusal")
	if err := f.im.OnRefusal(fxPeer, 3, &peerv1.Refusal{Link: l, Reason: v1alpha1.ReasonPeerNotGranted, Message: "grant\x1b[31m withdrawn"}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionCredentialsApplied)
	if c == nil || c.Reason != v1alpha1.ReasonPeerNotGranted || !strings.Contains(c.Message, "environment west refused: grant") || strings.Contains(c.Message, "\x1b") {
		t.Errorf("CredentialsApplied %+v, want PeerNotGranted with the peer's message cleaned", c)
	}
	if a := f.applied(t); len(a.settings) != 0 || a.key("logs") != "" {
		t.Errorf("after the refusal: settings %v, key %q; want the link's withdrawn", a.settings, a.key("logs"))
	}
}
