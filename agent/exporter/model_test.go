package exporter

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The models a consumer asks for, in the tables of the tests below.
const (
	unspecified = peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED
	askKey      = peerv1.SecurityModel_SECURITY_MODEL_API_KEY
	askCert     = peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE
)

func TestModelRefusal(t *testing.T) {
	apiKey, cert := v1alpha1.SecurityModelAPIKey, v1alpha1.SecurityModelCertificate
	tests := []struct {
		name       string
		export     v1alpha1.SecurityModel
		asked      peerv1.SecurityModel
		certsOn    bool
		wantReason string
	}{
		{"apiKey asked, apiKey offered", apiKey, askKey, false, ""},
		{"apiKey by default", "", askKey, false, ""},
		{"certificate asked, apiKey offered", apiKey, askCert, true, v1alpha1.ReasonModelNotAllowed},
		{"apiKey asked, certificate offered", cert, askKey, true, v1alpha1.ReasonModelNotAllowed},
		{"certificate asked and offered, setting on", cert, askCert, true, ""},
		{"certificate asked and offered, setting off", cert, askCert, false, v1alpha1.ReasonCertificateModelDisabled},
		{"0.1.0 consumer, apiKey export", apiKey, unspecified, false, ""},
		{"0.1.0 consumer, certificate export, setting on: the export decides", cert, unspecified, true, ""},
		{"0.1.0 consumer, certificate export, setting off", cert, unspecified, false, v1alpha1.ReasonCertificateModelDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Exporter{cfg: Config{CertificateModel: tt.certsOn}, log: hclog.NewNullLogger()}
			exp := &v1alpha1.ClusterExport{Spec: v1alpha1.ClusterExportSpec{Model: tt.export}}
			exp.Namespace, exp.Name = "data", "logs"
			ref := e.modelRefusal("east", testLink(1), &peerv1.ImportRequest{Model: tt.asked}, exp)
			switch {
			case tt.wantReason == "" && ref != nil:
				t.Fatalf("refused: %v", ref)
			case tt.wantReason != "" && (ref == nil || ref.Reason != tt.wantReason):
				t.Fatalf("got %v, want a refusal %s", ref, tt.wantReason)
			}
		})
	}
}

// TestModelOf: an export's spec.model picks its model (apiKey when unset), each model is found
// again by the name import requests and credentials give it, and no two models share a name.
func TestModelOf(t *testing.T) {
	e := &Exporter{}
	for _, tt := range []struct {
		spec v1alpha1.SecurityModel
		want v1alpha1.SecurityModel
		port esPort
		// shares: its credentials may name the exported CA bundle shared between links
		// (ca_ref); a certificate-model consumer takes its one CA inline.
		shares bool
	}{
		{"", v1alpha1.SecurityModelAPIKey, remoteClusterPort, true},
		{v1alpha1.SecurityModelAPIKey, v1alpha1.SecurityModelAPIKey, remoteClusterPort, true},
		{v1alpha1.SecurityModelCertificate, v1alpha1.SecurityModelCertificate, transportPort, false},
	} {
		m := e.modelOf(&v1alpha1.ClusterExport{Spec: v1alpha1.ClusterExportSpec{Model: tt.spec}})
		if m.name() != tt.want || m.port().port != tt.port.port {
			t.Errorf("spec.model %q: model %s, port %d; want %s, port %d", tt.spec, m.name(), m.port().port, tt.want, tt.port.port)
		}
		if m.sharesCA() != tt.shares {
			t.Errorf("spec.model %q: sharesCA %v, want %v", tt.spec, m.sharesCA(), tt.shares)
		}
	}
	names, wires := map[v1alpha1.SecurityModel]bool{}, map[peerv1.SecurityModel]bool{}
	for _, m := range e.models() {
		if names[m.name()] || wires[m.wire()] || m.wire() == peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED {
			t.Errorf("model %s: name or wire value %v taken twice or unspecified", m.name(), m.wire())
		}
		names[m.name()], wires[m.wire()] = true, true
		if got := e.modelOnWire(m.wire()); got == nil || got.name() != m.name() {
			t.Errorf("model %s on the wire as %v is found as %v", m.name(), m.wire(), got)
		}
		if got := e.requestedModel(&peerv1.ImportRequest{Model: m.wire()}); got != m.name() {
			t.Errorf("a request for %v asks for %q, want %s", m.wire(), got, m.name())
		}
	}
	if got := e.requestedModel(&peerv1.ImportRequest{}); got != "" {
		t.Errorf("a request without a model asks for %q, want none", got)
	}
	if e.modelOnWire(peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED) != nil {
		t.Error("credentials without a model name a model")
	}
}

// TestAnswerByModel: a link pass through the answer fixture, for each export model × the model
// the consumer asks for × this agent's certificate-model setting. The consumer always offers its
// transport CA. An agreed API-key answer makes one key and adds no peer CA to the transport
// trust; an agreed certificate answer adds the peer CA and makes no key; a refusal does neither.
func TestAnswerByModel(t *testing.T) {
	tests := []struct {
		name    string
		export  v1alpha1.SecurityModel
		asked   peerv1.SecurityModel
		certsOn bool
		// want is the model of the credentials, or UNSPECIFIED for a refusal wantReason.
		want       peerv1.SecurityModel
		wantReason string
	}{
		{"apiKey export, apiKey asked", v1alpha1.SecurityModelAPIKey, askKey, false, askKey, ""},
		{"unset export, apiKey asked", "", askKey, true, askKey, ""},
		{"apiKey export, 0.1.0 consumer", v1alpha1.SecurityModelAPIKey, unspecified, true, askKey, ""},
		{"apiKey export, certificate asked", v1alpha1.SecurityModelAPIKey, askCert, true, unspecified, v1alpha1.ReasonModelNotAllowed},
		{"certificate export, certificate asked", v1alpha1.SecurityModelCertificate, askCert, true, askCert, ""},
		{"certificate export, 0.1.0 consumer", v1alpha1.SecurityModelCertificate, unspecified, true, askCert, ""},
		{"certificate export, apiKey asked", v1alpha1.SecurityModelCertificate, askKey, true, unspecified, v1alpha1.ReasonModelNotAllowed},
		{"certificate export, setting off", v1alpha1.SecurityModelCertificate, askCert, false, unspecified, v1alpha1.ReasonCertificateModelDisabled},
		{"certificate export, 0.1.0 consumer, setting off", v1alpha1.SecurityModelCertificate, unspecified, false, unspecified, v1alpha1.ReasonCertificateModelDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := axExportObject("east")
			if tt.export == v1alpha1.SecurityModelCertificate {
				exp = certExport("east")
			}
			exp.Spec.Model = tt.export
			f := newAnswerFixture(t, exp, axElasticsearch(true))
			f.e.cfg.CertificateModel = tt.certsOn
			req := certRequest(axLink, longLivedCA(t, "east-transport"))
			req.Model = tt.asked
			if err := f.e.OnImport("east", req); err != nil {
				t.Fatalf("refused on receipt: %v", err)
			}
			f.pass(t, "east", axLink)

			c, r := f.credentials("east", axLink), f.refusalOf("east", axLink)
			switch {
			case tt.wantReason != "" && (r == nil || r.GetReason() != tt.wantReason):
				t.Fatalf("got credentials %v, refusal %v; want a refusal %s", c, r, tt.wantReason)
			case tt.wantReason == "" && (c == nil || c.GetModel() != tt.want):
				t.Fatalf("got credentials %v, refusal %v; want credentials of model %v", c, r, tt.want)
			}
			keys := len(f.liveKeys("east", axLink))
			_, owners := f.trust(t)
			wantKeys, wantOwners := 0, 0
			switch {
			case tt.wantReason != "":
			case tt.want == askKey:
				wantKeys = 1
			default:
				wantOwners = 1
			}
			if keys != wantKeys || len(owners) != wantOwners {
				t.Errorf("%d live keys, transport trust owners %v; want %d keys, %d owners", keys, owners, wantKeys, wantOwners)
			}
			if c != nil && c.GetModel() == askCert && (c.GetApiKeyId() != "" || c.GetProxyAddress() != certAddr) {
				t.Errorf("certificate answer with key %q at %s", c.GetApiKeyId(), c.GetProxyAddress())
			}
			if c != nil && c.GetModel() == askKey && (c.GetApiKeyEncoded() == "" || c.GetProxyAddress() != axProxy) {
				t.Errorf("API-key answer without a key or at %s", c.GetProxyAddress())
			}
		})
	}
}
