package importer

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

func testCA(t *testing.T, isCA bool, notAfter time.Time) []byte {
	t.Helper()
	return testenv.New(t, testenv.Spec{CN: "logs-transport", NotAfter: notAfter, IsCA: isCA, KeyUsage: x509.KeyUsageCertSign}).PEM()
}

func TestValidateCertificate(t *testing.T) {
	ca := testCA(t, true, time.Now().Add(time.Hour))
	good := func() *peerv1.Credentials {
		return &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, CaBundle: ca,
			ProxyAddress: "203.0.113.7:9300", ServerName: "logs-es-transport.data.svc"}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*peerv1.Credentials)
		reason string
	}{
		{name: "valid", mutate: func(*peerv1.Credentials) {}},
		{name: "an API key with the certificate model", mutate: func(c *peerv1.Credentials) { c.ApiKeyId = "abc" }, reason: "InvalidCredentials"},
		{name: "an expiration with the certificate model", mutate: func(c *peerv1.Credentials) { c.ApiKeyExpiration = timestamppb.Now() }, reason: "InvalidCredentials"},
		{name: "not a CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = testCA(t, false, time.Now().Add(time.Hour)) }, reason: "InvalidCA"},
		{name: "expired CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = testCA(t, true, time.Now().Add(-time.Minute)) }, reason: "InvalidCA"},
		{name: "no CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = nil }, reason: "InvalidCA"},
		{name: "no port", mutate: func(c *peerv1.Credentials) { c.ProxyAddress = "logs.example" }, reason: "InvalidAddress"},
		{name: "bad server name", mutate: func(c *peerv1.Credentials) { c.ServerName = "a b" }, reason: "InvalidServerName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(c)
			checkRefusal(t, validateCertificate(c, time.Now()), tc.reason)
		})
	}
}

// The certificate model through the full reconcile: the peer's transport CA joins the local
// Elasticsearch's transport trust (ecklink's transport CA ConfigMap, wired into
// spec.transport.tls.certificateAuthorities), cluster.remote.<alias> points at the peer's
// transport port in proxy mode with no API key, and the conditions follow what ECK and
// Elasticsearch make of it.

const certProxy = "203.0.113.7:9300"

// transportTrust is ecklink's transport CA ConfigMap of the fixture's Elasticsearch (nil: none).
func (f *fixture) transportTrust(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	return f.storedConfigMap(t, wiring.TransportCAConfigMapName(fxES))
}

// trustedFingerprints are the CA fingerprints the ConfigMap records for the alias's import owner.
func trustedFingerprints(t *testing.T, cm *corev1.ConfigMap, alias string) []string {
	t.Helper()
	if cm == nil {
		return nil
	}
	owners, err := transporttrust.Owners(cm)
	if err != nil {
		t.Fatal(err)
	}
	return owners[importOwner(alias)]
}

// eckCopiesTrust writes <es>-es-transport-certs-public as ECK does once it read the transport
// CA ConfigMap: the local CA first, then the CAs it trusts.
func (f *fixture) eckCopiesTrust(t *testing.T, cas ...[]byte) {
	t.Helper()
	data := append([]byte{}, newTestCA(t, "ccs-own-transport")...)
	for _, ca := range cas {
		data = append(data, ca...)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: eck.TransportCertsPublic(fxES),
		Labels: map[string]string{eck.ClusterNameLabel: fxES}}, Data: map[string][]byte{"ca.crt": data}}
	if _, err := f.Kube.CoreV1().Secrets(fxNS).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool { _, ok := f.im.cfg.Cache.ECKSecret(fxNS, s.Name); return ok })
}

// TestCertificatePassAppliesTrust: certificate-model credentials become, in one pass, the peer's
// CA in ecklink's transport CA ConfigMap (owned by import/<alias>), the ConfigMap named in the
// Elasticsearch resource and proxy-mode settings to the transport port, with no API-key Secret;
// TrustApplied waits for ECK until the CA shows in the transport certificates, then says Applied.
// The link carries the deprecation warning of the model.
func TestCertificatePassAppliesTrust(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	creds := certificateCredentials(t, "logs")
	if err := f.im.OnCredentials(fxPeer, 1, creds); err != nil {
		t.Fatalf("valid certificate credentials refused: %v", err)
	}
	f.reconcile(t)

	cm := f.transportTrust(t)
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, creds.CaBundle) {
		t.Fatalf("transport trust of logs %v, want the peer's CA", got)
	}
	if !strings.Contains(cm.Data[transporttrust.Key], strings.TrimSpace(string(creds.CaBundle))) {
		t.Error("the ConfigMap's bundle, the file ECK reads, lacks the peer's CA")
	}
	a := f.applied(t)
	if got := wiring.TransportCAConfigMapOf(a.es); got != wiring.TransportCAConfigMapName(fxES) {
		t.Errorf("spec.transport.tls.certificateAuthorities names %q, want ecklink's ConfigMap", got)
	}
	if a.secret != nil || a.cm != nil {
		t.Errorf("API-key objects written for a certificate link: Secret %v, CA ConfigMap %v", a.secret != nil, a.cm != nil)
	}
	s, ok := a.settings["logs"]
	if !ok || s.Mode != "proxy" || s.ProxyAddress != certProxy || s.ServerName != creds.ServerName {
		t.Fatalf("settings of logs %+v (present %v), want proxy mode to %s", s, ok, certProxy)
	}
	want := map[string]string{
		v1alpha1.ConditionTrustApplied:         v1alpha1.ReasonWaitingForECK,
		v1alpha1.ConditionCredentialsApplied:   v1alpha1.ReasonCertificateModel,
		v1alpha1.ConditionSettingsApplied:      v1alpha1.ReasonApplied,
		v1alpha1.ConditionConnected:            v1alpha1.ReasonRemoteConnected,
		v1alpha1.ConditionSecurityModelCurrent: v1alpha1.ReasonDeprecatedSecurityModel,
	}
	if got := f.reasons(t, "logs"); !sameReasons(got, want) {
		t.Errorf("conditions %v, want %v", got, want)
	}

	// ECK copies the CA into the transport certificates: the next pass says the trust is applied.
	f.eckCopiesTrust(t, creds.CaBundle)
	f.settle(t)
	f.reconcile(t)
	if r := f.reasons(t, "logs")[v1alpha1.ConditionTrustApplied]; r != v1alpha1.ReasonApplied {
		t.Errorf("TrustApplied %q once ECK has the CA, want Applied", r)
	}
	if rv := f.transportTrust(t).ResourceVersion; rv != cm.ResourceVersion {
		t.Errorf("the ConfigMap was rewritten (resourceVersion %s -> %s) with nothing new", cm.ResourceVersion, rv)
	}
}

func sameReasons(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestCertificatePassOutcomes: what each situation of the local side makes of the certificate
// pass: what is written (trust, wiring, settings), what is not, the conditions, and whether the
// pass fails (to be retried).
func TestCertificatePassOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		manual  bool // spec.wiring manual
		prepare func(t *testing.T, f *fixture)
		fails   bool
		// trusted: the peer's CA is in the transport trust; wired: the resource names it;
		// settings: cluster.remote.logs points at the peer's transport port.
		trusted, wired, settings bool
		reasons                  map[string]string
	}{
		{name: "connected", prepare: func(t *testing.T, f *fixture) { f.connectAll() },
			trusted: true, wired: true, settings: true,
			reasons: map[string]string{v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteConnected}},
		{name: "not connected yet", trusted: true, wired: true, settings: true,
			reasons: map[string]string{v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteNotConnected}},
		{name: "manual wiring", manual: true,
			trusted: true,
			reasons: map[string]string{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonManualWiringRequired, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonReconciling}},
		{name: "alias configured by someone else", prepare: func(t *testing.T, f *fixture) {
			if _, err := f.es.PutRemote(t.Context(), "logs", elastic.RemoteSettings{Mode: "proxy", ProxyAddress: "192.0.2.1:9300"}); err != nil {
				t.Fatal(err)
			}
		}, reasons: map[string]string{v1alpha1.ConditionTrustApplied: v1alpha1.ReasonAliasConflict, v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonAliasConflict}},
		{name: "settings read unavailable", prepare: func(_ *testing.T, f *fixture) {
			f.faults.Set(esim.Fault{Method: "GET", Prefix: "/_cluster/settings", Status: 503, ErrType: "cluster_block_exception"})
		}, fails: true},
		{name: "settings write forbidden", prepare: func(_ *testing.T, f *fixture) {
			f.faults.Set(esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 403, ErrType: "security_exception"})
		}, fails: true, trusted: true, wired: true,
			reasons: map[string]string{v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonElasticsearchForbidden}},
		{name: "remote info fails", prepare: func(_ *testing.T, f *fixture) {
			f.faults.Set(esim.Fault{Method: "GET", Prefix: "/_remote/info", Status: 500, ErrType: "exception"})
		}, fails: true, trusted: true, wired: true, settings: true,
			reasons: map[string]string{v1alpha1.ConditionConnected: v1alpha1.ReasonElasticsearchUnavailable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := remoteCluster("logs", v1alpha1.SecurityModelCertificate)
			if tc.manual {
				rc.Spec.Wiring = v1alpha1.WiringManual
			}
			f := newFixture(t, rc)
			if tc.prepare != nil {
				tc.prepare(t, f)
			}
			creds := certificateCredentials(t, "logs")
			if err := f.im.OnCredentials(fxPeer, 1, creds); err != nil {
				t.Fatal(err)
			}
			err := f.tryReconcile(t)
			if (err != nil) != tc.fails {
				t.Fatalf("pass error %v, want failure %v", err, tc.fails)
			}
			trusted := len(trustedFingerprints(t, f.transportTrust(t), "logs")) == 1
			a := f.applied(t)
			wired := wiring.TransportCAConfigMapOf(a.es) == wiring.TransportCAConfigMapName(fxES)
			s := a.settings["logs"]
			settings := s.ProxyAddress == certProxy
			if trusted != tc.trusted || wired != tc.wired || settings != tc.settings {
				t.Errorf("trusted %v wired %v settings %v (%+v), want %v %v %v", trusted, wired, settings, s, tc.trusted, tc.wired, tc.settings)
			}
			if tc.name == "alias configured by someone else" && s.ProxyAddress != "192.0.2.1:9300" {
				t.Errorf("the user's alias was overwritten: %+v", s)
			}
			if tc.name == "manual wiring" {
				if snip := f.remoteCluster(t, "logs").Status.WiringSnippet; !strings.Contains(snip, wiring.TransportCAConfigMapName(fxES)) {
					t.Errorf("wiring snippet %q does not name the transport CA ConfigMap", snip)
				}
			}
			if got := f.reasons(t, "logs"); !sameReasons(got, tc.reasons) {
				t.Errorf("conditions %v, want %v", got, tc.reasons)
			}
		})
	}
}

// TestCertificatePassRecoversAfterFailure: a pass cut short by Elasticsearch after the trust was
// written keeps it, and the next pass finishes the link without writing the trust again.
func TestCertificatePassRecoversAfterFailure(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "logs")); err != nil {
		t.Fatal(err)
	}
	f.faults.Set(esim.Fault{Method: "PUT", Prefix: "/_cluster/settings", Status: 503, ErrType: "cluster_block_exception"})
	if err := f.tryReconcile(t); err == nil {
		t.Fatal("the pass succeeded while the settings write failed")
	}
	cm := f.transportTrust(t)
	if cm == nil {
		t.Fatal("the trust written before the failure is gone")
	}
	f.faults.Set()
	f.settle(t)
	f.reconcile(t)
	if s := f.applied(t).settings["logs"]; s.ProxyAddress != certProxy {
		t.Fatalf("settings after recovery %+v, want proxy to %s", s, certProxy)
	}
	if got := f.transportTrust(t).ResourceVersion; got != cm.ResourceVersion {
		t.Errorf("the ConfigMap was rewritten on recovery (%s -> %s)", cm.ResourceVersion, got)
	}
	if r := f.reasons(t, "logs")[v1alpha1.ConditionSettingsApplied]; r != v1alpha1.ReasonApplied {
		t.Errorf("SettingsApplied %q after recovery, want Applied", r)
	}
}

// TestCertificateBadAnswerKeepsTheTrust: certificate-model credentials that fail validation after
// a good answer are refused with the named reason, and the next pass keeps the CA and settings
// of the last good answer.
func TestCertificateBadAnswerKeepsTheTrust(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(c *peerv1.Credentials)
		reason string
		// withdraws: the answer is of a model the RemoteCluster does not accept; the link's
		// status says so and what it had applied goes (peer.go: nothing of it is kept).
		withdraws bool
	}{
		{"an API key added", func(c *peerv1.Credentials) { c.ApiKeyId = "key-1"; c.ApiKeyEncoded = encodedKey("key-1") }, "InvalidCredentials", false},
		{"a leaf for a CA", func(c *peerv1.Credentials) { c.CaBundle = testCA(t, false, time.Now().Add(time.Hour)) }, "InvalidCA", false},
		{"two CAs", func(c *peerv1.Credentials) { c.CaBundle = append(newTestCA(t, "a"), newTestCA(t, "b")...) }, "InvalidCA", false},
		{"expired CA", func(c *peerv1.Credentials) { c.CaBundle = testCA(t, true, time.Now().Add(-time.Minute)) }, "InvalidCA", false},
		{"port out of range", func(c *peerv1.Credentials) { c.ProxyAddress = "203.0.113.7:70000" }, "InvalidAddress", false},
		{"server name not DNS", func(c *peerv1.Credentials) { c.ServerName = "logs west" }, "InvalidServerName", false},
		{"the API-key model", func(c *peerv1.Credentials) {
			*c = *apiKeyCredentials("logs", "key-1", newTestCA(t, "west-transport"))
		}, v1alpha1.ReasonModelNotAllowed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
			f.connectAll()
			good := certificateCredentials(t, "logs")
			if err := f.im.OnCredentials(fxPeer, 1, good); err != nil {
				t.Fatal(err)
			}
			f.reconcile(t)
			f.settle(t)

			bad := certificateCredentials(t, "logs")
			tc.mutate(bad)
			checkRefusal(t, f.im.OnCredentials(fxPeer, 2, bad), tc.reason)
			f.reconcile(t)
			if tc.withdraws {
				if cm, s := f.transportTrust(t), f.applied(t).settings["logs"]; cm != nil || s.ProxyAddress != "" {
					t.Errorf("after an answer of a model not accepted: trust %v, settings %+v; want both withdrawn", cm != nil, s)
				}
				if r := f.reasons(t, "logs")[v1alpha1.ConditionCredentialsApplied]; r != v1alpha1.ReasonModelNotAllowed {
					t.Errorf("CredentialsApplied %q, want ModelNotAllowed", r)
				}
				return
			}
			if got := trustedFingerprints(t, f.transportTrust(t), "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, good.CaBundle) {
				t.Errorf("trust after the refused answer %v, want only the good CA", got)
			}
			if s := f.applied(t).settings["logs"]; s.ProxyAddress != certProxy || s.Mode != "proxy" {
				t.Errorf("settings after the refused answer %+v, want the good answer's", s)
			}
			if a := f.applied(t); a.secret != nil {
				t.Error("an API-key Secret was written from a refused answer")
			}
		})
	}
}

// TestCertificateLinkRemoval: when the peer withdraws the credentials of a certificate link, the
// pass removes its settings, its CA from the transport trust, ecklink's ConfigMap and the wiring
// of the Elasticsearch resource, in that order of safety (no wiring left to a missing ConfigMap).
func TestCertificateLinkRemoval(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "logs")); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	f.settle(t)
	if f.transportTrust(t) == nil {
		t.Fatal("no trust to remove")
	}

	f.im.OnCredentialsRemoved(fxPeer, link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"})
	f.reconcile(t)
	a := f.applied(t)
	if _, ok := a.settings["logs"]; ok {
		t.Errorf("settings of logs left after the removal: %+v", a.settings["logs"])
	}
	if cm := f.transportTrust(t); cm != nil {
		t.Errorf("ecklink's transport CA ConfigMap left with owners %v", cm.Annotations[transporttrust.AnnotationCAs])
	}
	if got := wiring.TransportCAConfigMapOf(a.es); got != "" || wiring.TransportCAWiredByUs(a.es) {
		t.Errorf("the Elasticsearch still names %q (wired by us %v) after the removal", got, wiring.TransportCAWiredByUs(a.es))
	}
}

// TestNoCertificateLinkCostsNoTrustRead: an Elasticsearch with only API-key links never gets a
// transport CA ConfigMap nor its wiring, and once the alias record is migrated (first pass) a
// pass does not even read the ConfigMap.
func TestNoCertificateLinkCostsNoTrustRead(t *testing.T) {
	f := newAppliedFixture(t)
	f.Kube.ClearActions()
	f.reconcile(t)
	for _, a := range f.Kube.Actions() {
		if a.GetResource().Resource == "configmaps" && a.GetVerb() == "get" {
			if n, ok := a.(interface{ GetName() string }); ok && n.GetName() == wiring.TransportCAConfigMapName(fxES) {
				t.Errorf("the transport CA ConfigMap was read for an Elasticsearch with no certificate link")
			}
		}
	}
	if f.transportTrust(t) != nil || wiring.TransportCAConfigMapOf(f.applied(t).es) != "" {
		t.Error("transport trust written for an API-key link")
	}
}

// TestCertificateLinksArrivingTogetherCostOneSettingsWrite: the certificate pass sets the
// settings of its links as the API-key pass does, with one write of the alias record and one
// PUT /_cluster/settings for all of them, and an unchanged pass writes nothing.
func TestCertificateLinksArrivingTogetherCostOneSettingsWrite(t *testing.T) {
	aliases := []string{"c-0", "c-1", "c-2", "c-3", "c-4"}
	var rcs []*v1alpha1.RemoteCluster
	for _, alias := range aliases {
		rcs = append(rcs, remoteCluster(alias, v1alpha1.SecurityModelCertificate))
	}
	f := newFixture(t, rcs...)
	f.connectAll()
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == len(aliases) })
	for _, alias := range aliases {
		if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, alias)); err != nil {
			t.Fatalf("credentials of %s: %v", alias, err)
		}
	}
	puts := f.settingsPuts()
	f.reconcile(t)
	if n := f.settingsPuts() - puts; n != 1 {
		t.Errorf("%d PUT /_cluster/settings for %d new certificate links, want 1", n, len(aliases))
	}
	settings := f.applied(t).settings
	for _, alias := range aliases {
		if s, ok := settings[alias]; !ok || s.Mode != "proxy" || s.ProxyAddress != certProxy {
			t.Errorf("settings of %s %+v (present %v), want proxy mode to %s", alias, s, ok, certProxy)
		}
	}
	if got := f.reasons(t, "c-3")[v1alpha1.ConditionSettingsApplied]; got != v1alpha1.ReasonApplied {
		t.Errorf("SettingsApplied of c-3 %q, want Applied", got)
	}
	f.settle(t)
	puts = f.settingsPuts()
	f.reconcile(t)
	if n := f.settingsPuts() - puts; n != 0 {
		t.Errorf("%d PUT /_cluster/settings in a pass with nothing new, want 0", n)
	}
}
