package exporter

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestModelRefusal(t *testing.T) {
	apiKey, cert := v1alpha1.SecurityModelAPIKey, v1alpha1.SecurityModelCertificate
	const (
		unspecified = peerv1.SecurityModel_SECURITY_MODEL_UNSPECIFIED
		askKey      = peerv1.SecurityModel_SECURITY_MODEL_API_KEY
		askCert     = peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE
	)
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
