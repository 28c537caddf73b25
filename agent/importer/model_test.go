package importer

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestImportRequestCarriesTheModel: the import request says which model the RemoteCluster
// accepts (apiKey when unset), and carries the local transport CA only for the certificate model.
func TestImportRequestCarriesTheModel(t *testing.T) {
	f := newFixture(t, remoteCluster("by-default", ""), remoteCluster("by-key", v1alpha1.SecurityModelAPIKey), remoteCluster("by-cert", v1alpha1.SecurityModelCertificate))
	f.reconcile(t)
	for alias, want := range map[string]peerv1.SecurityModel{
		"by-default": peerv1.SecurityModel_SECURITY_MODEL_API_KEY,
		"by-key":     peerv1.SecurityModel_SECURITY_MODEL_API_KEY,
		"by-cert":    peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE,
	} {
		id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: alias}
		req, ok := f.outbox.get(link.Resource(link.KindImport, id)).(*peerv1.ImportRequest)
		if !ok {
			t.Fatalf("%s: no import request published", alias)
		}
		if req.GetModel() != want {
			t.Errorf("%s: import request model %s, want %s", alias, req.GetModel(), want)
		}
		if want == peerv1.SecurityModel_SECURITY_MODEL_API_KEY && len(req.GetTransportCaBundle()) > 0 {
			t.Errorf("%s: an apiKey import request carries the local transport CA", alias)
		}
	}
}

// TestModelNotAllowed: credentials of another model than the RemoteCluster accepts are refused
// with ModelNotAllowed; nothing is applied (no ConfigMap, no transport trust, no change of the
// Elasticsearch resource) and the RemoteCluster's conditions name the reason and the peer.
func TestModelNotAllowed(t *testing.T) {
	f := newFixture(t, remoteCluster("forged", ""), remoteCluster("wants-cert", v1alpha1.SecurityModelCertificate))
	before := f.storedES(t)
	apiKeyCreds := certificateCredentials(t, "wants-cert")
	apiKeyCreds.Model, apiKeyCreds.ApiKeyId = peerv1.SecurityModel_SECURITY_MODEL_API_KEY, "key-1"
	for _, tc := range []struct {
		alias string
		creds *peerv1.Credentials
		want  string
	}{
		{"forged", certificateCredentials(t, "forged"), "answered with the certificate security model, which this RemoteCluster does not accept (spec.model apiKey)"},
		{"wants-cert", apiKeyCreds, "answered with the apiKey security model, which this RemoteCluster does not accept (spec.model certificate)"},
	} {
		err := f.im.OnCredentials(fxPeer, 3, tc.creds)
		var ref *peering.RefusalError
		if !errors.As(err, &ref) || ref.Reason != v1alpha1.ReasonModelNotAllowed || !strings.Contains(ref.Message, tc.want) {
			t.Fatalf("%s: OnCredentials = %v, want a refusal ModelNotAllowed saying %q", tc.alias, err, tc.want)
		}
	}
	f.reconcile(t)
	cms, err := f.Kube.CoreV1().ConfigMaps(fxNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 0 {
		t.Errorf("ConfigMaps written for refused credentials: %v", cms.Items)
	}
	after := f.storedES(t)
	if after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("the Elasticsearch resource changed: %v", after.Object["spec"])
	}
	if len(f.node.RemoteClusters()) != 0 {
		t.Errorf("remote cluster settings written: %v", f.node.RemoteClusters())
	}
	for _, name := range []string{"forged", "wants-cert"} {
		rc := f.remoteCluster(t, name)
		for _, c := range rc.Status.Conditions {
			if c.Type == v1alpha1.ConditionPeerConnected {
				continue // the stream's health, reported by the Peer, not the link's
			}
			if c.Type == v1alpha1.ConditionLicenseSufficient {
				continue // the local license allows the link; the remote's is not reported with a refusal
			}
			if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonModelNotAllowed || !strings.Contains(c.Message, "environment "+fxPeer) {
				t.Errorf("%s: condition %s=%s %s: %s, want False ModelNotAllowed naming environment %s", name, c.Type, c.Status, c.Reason, c.Message, fxPeer)
			}
		}
		if len(rc.Status.Conditions) == 0 {
			t.Errorf("%s: no conditions", name)
		}
	}
}

// TestModelChangedAfterCredentials: credentials accepted while the RemoteCluster asked for the
// certificate model are not applied once it asks for apiKey (plan refuses them too), so a peer
// CA can reach the transport trust only while the RemoteCluster asks for that model.
func TestModelChangedAfterCredentials(t *testing.T) {
	f := newFixture(t, remoteCluster("switching", v1alpha1.SecurityModelCertificate))
	if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "switching")); err != nil {
		t.Fatalf("certificate credentials for a RemoteCluster asking for them: %v", err)
	}
	if p := f.im.plan(fxNS, fxES)[0]; !appliedAs(p, v1alpha1.SecurityModelCertificate) {
		t.Fatal("the certificate link is not planned with the certificate model")
	}
	rc := f.remoteCluster(t, "switching")
	rc.Spec.Model = v1alpha1.SecurityModelAPIKey
	if _, err := f.CRDs.RemoteClusters().Update(t.Context(), rc); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		rcs := f.im.cfg.Cache.RemoteClustersShared()
		return len(rcs) == 1 && rcs[0].Spec.Model == v1alpha1.SecurityModelAPIKey
	})
	p := f.im.plan(fxNS, fxES)[0]
	if appliedAs(p, v1alpha1.SecurityModelCertificate) || p.desired() || p.answer.refusal.GetReason() != v1alpha1.ReasonModelNotAllowed {
		t.Fatalf("after the switch to apiKey: certificate=%v desired=%v answer=%+v", appliedAs(p, v1alpha1.SecurityModelCertificate), p.desired(), p.answer)
	}
}

// appliedAs reports whether the plan applies its link now with the model named want.
func appliedAs(p *linkPlan, want v1alpha1.SecurityModel) bool {
	return p.applied() && p.model.name() == want
}

// TestModelOf: a RemoteCluster's spec.model picks its model (apiKey when unset), each model is
// found again by the name credentials give it, no two models share a name, and only the
// API-key model's CA may be shared between links and take the CA path.
func TestModelOf(t *testing.T) {
	for _, tt := range []struct {
		spec     v1alpha1.SecurityModel
		want     v1alpha1.SecurityModel
		wire     peerv1.SecurityModel
		sharesCA bool
	}{
		{"", v1alpha1.SecurityModelAPIKey, peerv1.SecurityModel_SECURITY_MODEL_API_KEY, true},
		{v1alpha1.SecurityModelAPIKey, v1alpha1.SecurityModelAPIKey, peerv1.SecurityModel_SECURITY_MODEL_API_KEY, true},
		{v1alpha1.SecurityModelCertificate, v1alpha1.SecurityModelCertificate, peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, false},
	} {
		m := modelOf(remoteCluster("logs", tt.spec))
		if m.name() != tt.want || m.wire() != tt.wire || m.sharesCA() != tt.sharesCA || sharesCA(tt.wire) != tt.sharesCA {
			t.Errorf("spec.model %q: model %s (%v, shares CA %v); want %s (%v, shares CA %v)", tt.spec, m.name(), m.wire(), m.sharesCA(), tt.want, tt.wire, tt.sharesCA)
		}
	}
	names, wires := map[v1alpha1.SecurityModel]bool{}, map[peerv1.SecurityModel]bool{}
	for _, m := range models {
		if names[m.name()] || wires[m.wire()] || m.wire() == peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED {
			t.Errorf("model %s: name or wire value %v taken twice or unspecified", m.name(), m.wire())
		}
		names[m.name()], wires[m.wire()] = true, true
		if got := modelOnWire(m.wire()); got == nil || got.name() != m.name() {
			t.Errorf("model %s on the wire as %v is found as %v", m.name(), m.wire(), got)
		}
		if got := answerModel(&peerv1.Credentials{Model: m.wire()}); got != m.name() {
			t.Errorf("credentials of %v are of model %s, want %s", m.wire(), got, m.name())
		}
	}
	if modelOnWire(peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED) != nil || sharesCA(peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED) {
		t.Error("credentials without a model name a model")
	}
	if got := answerModel(&peerv1.Credentials{}); got != v1alpha1.SecurityModelAPIKey {
		t.Errorf("credentials without a model (release 0.1.0) are of model %s, want apiKey", got)
	}
	if models[0].name() != v1alpha1.SecurityModelCertificate {
		t.Error("the certificate pass must run first: it lets go of the transport trust of links that left it")
	}
}

// TestValidateByModel: credentials are checked by the model they name; a model this agent does
// not know is refused, and each model refuses what belongs to the other.
func TestValidateByModel(t *testing.T) {
	im := testImporter()
	ca := newTestCA(t, "west-transport")
	apiKey := func() *peerv1.Credentials { return apiKeyCredentials("logs", "key-1", ca) }
	cert := func() *peerv1.Credentials { return certificateCredentials(t, "logs") }
	for _, tt := range []struct {
		name   string
		creds  *peerv1.Credentials
		mutate func(*peerv1.Credentials)
		reason string
	}{
		{"apiKey", apiKey(), nil, ""},
		{"apiKey, id only", apiKey(), func(c *peerv1.Credentials) { c.ApiKeyEncoded = "" }, ""},
		{"apiKey without a key", apiKey(), func(c *peerv1.Credentials) { c.ApiKeyId, c.ApiKeyEncoded = "", "" }, "InvalidAPIKey"},
		{"apiKey, key of another id", apiKey(), func(c *peerv1.Credentials) { c.ApiKeyId = "key-2" }, "InvalidAPIKey"},
		{"apiKey without a CA", apiKey(), func(c *peerv1.Credentials) { c.CaBundle = nil }, "InvalidCA"},
		{"apiKey, CA to come (ca_ref)", apiKey(), func(c *peerv1.Credentials) { c.CaBundle, c.CaRef = nil, "0123456789abcdef" }, ""},
		{"apiKey without a port", apiKey(), func(c *peerv1.Credentials) { c.ProxyAddress = "logs.west" }, "InvalidAddress"},
		{"certificate", cert(), nil, ""},
		{"certificate carrying a key", cert(), func(c *peerv1.Credentials) { c.ApiKeyId = "key-1" }, "InvalidCredentials"},
		{"certificate with a chain, not one CA", cert(), func(c *peerv1.Credentials) { c.CaBundle = append(c.CaBundle, ca...) }, "InvalidCA"},
		{"apiKey credentials named certificate", apiKey(), func(c *peerv1.Credentials) { c.Model = peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE }, "InvalidCredentials"},
		{"certificate credentials named apiKey", cert(), func(c *peerv1.Credentials) { c.Model = peerv1.SecurityModel_SECURITY_MODEL_API_KEY }, "InvalidAPIKey"},
		{"no model", apiKey(), func(c *peerv1.Credentials) { c.Model = peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED }, "UnsupportedModel"},
		{"unknown model", apiKey(), func(c *peerv1.Credentials) { c.Model = 42 }, "UnsupportedModel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.mutate != nil {
				tt.mutate(tt.creds)
			}
			checkRefusal(t, im.validate(tt.creds), tt.reason)
		})
	}
}

// TestModelReports: what each model says of a link it applies, from the same pass: its
// conditions, its status fields, the deprecation warning and whether the license is judged.
func TestModelReports(t *testing.T) {
	im := testImporter()
	st := &state{esFound: true, wired: true, links: map[string]*linkResult{"logs": {settingsApplied: true,
		hasKey: true, keyID: "key-1", effectiveKey: "key-1", info: elastic.RemoteInfo{Connected: true}}},
		cert: certState{wired: true, configMap: wiring.TransportCAConfigMapName(fxES)}}
	for _, tt := range []struct {
		spec       v1alpha1.SecurityModel
		creds      *peerv1.Credentials
		trust      string // TrustApplied reason
		credsR     string // CredentialsApplied reason
		apiKey     bool   // status.apiKey set
		deprecated bool
		license    bool
	}{
		{v1alpha1.SecurityModelAPIKey, apiKeyCredentials("logs", "key-1", newTestCA(t, "west")), v1alpha1.ReasonApplied, v1alpha1.ReasonApplied, true, false, true},
		{v1alpha1.SecurityModelCertificate, certificateCredentials(t, "logs"), v1alpha1.ReasonApplied, v1alpha1.ReasonCertificateModel, false, true, false},
	} {
		t.Run(string(tt.spec), func(t *testing.T) {
			rc := remoteCluster("logs", tt.spec)
			rc.Status.APIKey = &v1alpha1.AppliedAPIKey{ID: "key-0"} // what a previous pass reported
			p := &linkPlan{rc: rc, id: link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}, model: modelOf(rc),
				answer: &received{peer: fxPeer, creds: tt.creds}, caInECK: true}
			if !p.applied() {
				t.Fatal("the link is not applied with its model")
			}
			got := map[string]string{}
			for _, c := range p.model.conditions(p, st) {
				got[c.Type] = c.Reason
			}
			want := map[string]string{v1alpha1.ConditionTrustApplied: tt.trust, v1alpha1.ConditionCredentialsApplied: tt.credsR,
				v1alpha1.ConditionSettingsApplied: v1alpha1.ReasonApplied, v1alpha1.ConditionConnected: v1alpha1.ReasonRemoteConnected}
			if !sameReasons(got, want) {
				t.Errorf("conditions %v, want %v", got, want)
			}
			p.model.report(im, rc, p, st)
			if (rc.Status.APIKey != nil) != tt.apiKey || (tt.apiKey && rc.Status.APIKey.ID != "key-1") {
				t.Errorf("status.apiKey %+v, want set: %v", rc.Status.APIKey, tt.apiKey)
			}
			if _, judged := p.model.license(); p.model.deprecated() != tt.deprecated || judged != tt.license {
				t.Errorf("deprecated %v, license judged %v; want %v, %v", p.model.deprecated(), judged, tt.deprecated, tt.license)
			}
		})
	}
}
