package importer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// TestLicenseGoesToThePeer: the local Elasticsearch's license goes to the peer in the import
// request, and a license below enterprise makes LicenseSufficient False, naming the cluster, its
// license and what is needed, and Ready False for that reason; once upgraded, the request
// carries the new license and the condition waits for the peer's.
func TestLicenseGoesToThePeer(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""), remoteCluster("certs", v1alpha1.SecurityModelCertificate))
	f.im.licenses = &license.Cache{TTL: time.Minute, Now: time.Now} // no Retry: every pass reads a license below enterprise
	if err := f.node.SetLicense(esim.LicenseBasic, esim.LicenseActive); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	req, ok := f.outbox.get(link.Resource(link.KindImport, id)).(*peerv1.ImportRequest)
	if !ok || req.GetElasticsearchLicense().GetType() != "basic" || req.GetElasticsearchLicense().GetStatus() != "active" {
		t.Fatalf("import request license = %v", req.GetElasticsearchLicense())
	}
	rc := f.remoteCluster(t, "logs")
	c := condition(rc, v1alpha1.ConditionLicenseSufficient)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonLicenseInsufficient ||
		!strings.Contains(c.Message, "the local Elasticsearch search/ccs has a basic (active) license") || !strings.Contains(c.Message, "enterprise or trial") {
		t.Fatalf("LicenseSufficient = %+v", c)
	}
	if r := condition(rc, v1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonLicenseInsufficient {
		t.Fatalf("Ready = %+v", r)
	}
	if c := condition(f.remoteCluster(t, "certs"), v1alpha1.ConditionLicenseSufficient); c != nil {
		t.Errorf("a certificate-model link has a license condition: %+v", c)
	}

	if err := f.node.SetLicense(esim.LicenseEnterprise, esim.LicenseActive); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	req, _ = f.outbox.get(link.Resource(link.KindImport, id)).(*peerv1.ImportRequest)
	if req.GetElasticsearchLicense().GetType() != "enterprise" {
		t.Fatalf("import request license after the upgrade = %v", req.GetElasticsearchLicense())
	}
	c = condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionLicenseSufficient)
	if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.ReasonLicenseUnknown || !strings.Contains(c.Message, "ClusterExport data/logs (environment west) not known yet") {
		t.Fatalf("LicenseSufficient after the upgrade = %+v", c)
	}
}

// TestLicenseCondition: the verdict of both licenses, the peer's refusal for a license, and
// agents that report no license.
func TestLicenseCondition(t *testing.T) {
	ent := &peerv1.ElasticsearchLicense{Type: "enterprise", Status: "active"}
	creds := func(l *peerv1.ElasticsearchLicense) *received {
		return &received{creds: &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ElasticsearchLicense: l}}
	}
	tests := []struct {
		name    string
		local   license.License
		answer  *received
		status  metav1.ConditionStatus
		reason  string
		mention string
	}{
		{"both enterprise", license.License{Type: "enterprise", Status: "active"}, creds(ent), metav1.ConditionTrue, v1alpha1.ReasonLicenseSufficient, "enterprise (active)"},
		{"remote on gold", license.License{Type: "enterprise", Status: "active"}, creds(&peerv1.ElasticsearchLicense{Type: "gold", Status: "active"}),
			metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, "the Elasticsearch of ClusterExport data/logs (environment west) has a gold (active) license"},
		{"remote agent reports none (0.1.0)", license.License{Type: "trial", Status: "active"}, creds(nil), metav1.ConditionUnknown, v1alpha1.ReasonLicenseUnknown, "not known yet"},
		{"local unknown, no answer yet", license.License{}, nil, metav1.ConditionUnknown, v1alpha1.ReasonLicenseUnknown, "search/ccs and the Elasticsearch of ClusterExport"},
		{"local expired, no answer yet", license.License{Type: "enterprise", Status: "expired"}, nil, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, "enterprise (expired)"},
		{"refused by the peer for a license", license.License{Type: "enterprise", Status: "active"},
			&received{refusal: &peerv1.Refusal{Reason: v1alpha1.ReasonLicenseInsufficient, Message: "the exported Elasticsearch data/logs (environment west) has a basic (active) license: ..."}},
			metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, "environment west refused the link: the exported Elasticsearch data/logs"},
		{"refused for another reason", license.License{Type: "enterprise", Status: "active"},
			&received{refusal: &peerv1.Refusal{Reason: v1alpha1.ReasonPeerNotGranted, Message: "no"}}, metav1.ConditionTrue, v1alpha1.ReasonLicenseSufficient, "the local Elasticsearch search/ccs: enterprise (active)"},
		{"refused for another reason, local on basic", license.License{Type: "basic", Status: "active"},
			&received{refusal: &peerv1.Refusal{Reason: v1alpha1.ReasonPeerNotGranted, Message: "no"}}, metav1.ConditionFalse, v1alpha1.ReasonLicenseInsufficient, "search/ccs has a basic (active) license"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &linkPlan{rc: remoteCluster("logs", ""), model: apiKeyModel{}, answer: tt.answer}
			c, ok := licenseCondition(p, &state{license: tt.local})
			if !ok || c.Status != tt.status || c.Reason != tt.reason || !strings.Contains(c.Message, tt.mention) {
				t.Fatalf("condition = %+v (present %v), want %s %s mentioning %q", c, ok, tt.status, tt.reason, tt.mention)
			}
		})
	}
}

// TestInvalidLicenseInCredentials: a license that is not one is refused on receipt, naming the
// field, before anything is applied.
func TestInvalidLicenseInCredentials(t *testing.T) {
	c := &peerv1.Credentials{ElasticsearchLicense: &peerv1.ElasticsearchLicense{Type: strings.Repeat("x", 40), Status: "active"}}
	var ref *peering.RefusalError
	if err := validateText(c); !errors.As(err, &ref) || ref.Reason != "InvalidCredentials" || !strings.Contains(ref.Message, "elasticsearch_license type") {
		t.Fatalf("validateText = %v", err)
	}
}

func condition(rc *v1alpha1.RemoteCluster, t string) *metav1.Condition {
	return meta.FindStatusCondition(rc.Status.Conditions, t)
}
