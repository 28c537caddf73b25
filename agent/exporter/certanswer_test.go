package exporter

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The certificate model's answer on the exporting side, against the answer fixture: the peer's
// transport CA joins the exported Elasticsearch's transport trust under an owner naming the
// export, peer and link; the answer carries this side's transport CA and the transport address,
// and no API key; refusals add nothing, and a refused or removed link takes its CA out.

const certAddr = "logs.west.example:9300"

// certExport is data/logs with the certificate model, granting peers.
func certExport(peers ...string) *v1alpha1.ClusterExport {
	exp := axExportObject(peers...)
	exp.Spec.Model = v1alpha1.SecurityModelCertificate
	exp.Spec.ProxyAddress = certAddr
	exp.Spec.Access = nil
	return exp
}

// newCertFixture is the answer fixture exporting certExport, with the certificate model allowed.
func newCertFixture(t *testing.T, peers ...string) *answerFixture {
	t.Helper()
	f := newAnswerFixture(t, certExport(peers...), axElasticsearch(false))
	f.e.cfg.CertificateModel = true
	return f
}

// certRequest is a certificate-model import request of id carrying the consumer's transport CA.
func certRequest(id link.ID, ca []byte) *peerv1.ImportRequest {
	return &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: axNS, ExportName: axExport, ElasticsearchVersion: "9.3.2",
		Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, TransportCaBundle: ca}
}

// importCert receives peer's certificate-model request and runs one link pass.
func (f *answerFixture) importCert(t *testing.T, peer string, id link.ID, ca []byte) {
	t.Helper()
	if err := f.e.OnImport(peer, certRequest(id, ca)); err != nil {
		t.Fatalf("import request of %s refused on receipt: %v", id, err)
	}
	f.pass(t, peer, id)
}

// trust is the exported Elasticsearch's transport CA ConfigMap (nil: none) and its owners.
func (f *answerFixture) trust(t *testing.T) (*corev1.ConfigMap, map[string][]string) {
	t.Helper()
	cm := f.configMap(t, wiring.TransportCAConfigMapName(axES))
	if cm == nil {
		return nil, nil
	}
	owners, err := transporttrust.Owners(cm)
	if err != nil {
		t.Fatal(err)
	}
	return cm, owners
}

// wiredTrust reports whether the exported Elasticsearch names ecklink's transport CA ConfigMap.
func (f *answerFixture) wiredTrust(t *testing.T) bool {
	t.Helper()
	return wiring.TransportCAConfigMapOf(f.elasticsearch(t)) == wiring.TransportCAConfigMapName(axES)
}

// TestCertificateAnswer: a granted certificate-model import adds the consumer's transport CA to
// the exported Elasticsearch's transport trust (ecklink's ConfigMap, wired) under the link's
// owner, and is answered with this side's transport CA, the transport address and ECK's
// transport server name, with no API key made; a second pass writes nothing.
func TestCertificateAnswer(t *testing.T) {
	f := newCertFixture(t, "east")
	peerCA := longLivedCA(t, "east-transport")
	f.importCert(t, "east", axLink, peerCA)

	c := f.credentials("east", axLink)
	if c == nil {
		t.Fatalf("no credentials sent; outbox holds %v", f.held("east", link.Resource(link.KindCredentials, axLink)))
	}
	if c.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE || c.GetApiKeyId() != "" || c.GetApiKeyEncoded() != "" {
		t.Errorf("answer model %v with key %q: want the certificate model and no key", c.GetModel(), c.GetApiKeyId())
	}
	if testenv.Fingerprint(t, c.GetCaBundle()) != testenv.Fingerprint(t, f.ca) {
		t.Error("the answer does not carry the exported Elasticsearch's own transport CA")
	}
	if c.GetProxyAddress() != certAddr || c.GetServerName() != "logs-es-transport.data.svc" || c.GetElasticsearchVersion() != "9.3.2" {
		t.Errorf("answer address %q server name %q version %q", c.GetProxyAddress(), c.GetServerName(), c.GetElasticsearchVersion())
	}
	if n := len(f.node.APIKeys()); n != 0 || f.calls.Total("POST /_security") != 0 {
		t.Errorf("%d keys, %d key calls made for a certificate-model link", n, f.calls.Total("POST /_security"))
	}
	cm, owners := f.trust(t)
	owner := trustOwner(axExport, "east", axLink)
	if got := owners[owner]; len(got) != 1 || got[0] != testenv.Fingerprint(t, peerCA) {
		t.Fatalf("trust owners %v, want %s holding the peer's CA", owners, owner)
	}
	if !f.wiredTrust(t) {
		t.Error("the exported Elasticsearch does not name the transport CA ConfigMap")
	}

	f.pass(t, "east", axLink)
	if cm2, _ := f.trust(t); cm2.ResourceVersion != cm.ResourceVersion {
		t.Errorf("a pass with nothing new rewrote the ConfigMap (%s -> %s)", cm.ResourceVersion, cm2.ResourceVersion)
	}
}

// TestCertificateAnswerRefusals: each reason the certificate path refuses a link for, with
// nothing added to the transport trust and no key made.
func TestCertificateAnswerRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, f *answerFixture)
		req     func(t *testing.T) *peerv1.ImportRequest
		reason  string
	}{
		{name: "no consumer transport CA", req: func(*testing.T) *peerv1.ImportRequest { return certRequest(axLink, nil) },
			reason: v1alpha1.ReasonTransportCAMissing},
		{name: "a leaf for the CA", req: func(t *testing.T) *peerv1.ImportRequest {
			return certRequest(axLink, selfSignedPEM(t, false, time.Now()))
		}, reason: v1alpha1.ReasonInvalidTransportCA},
		{name: "two CAs", req: func(t *testing.T) *peerv1.ImportRequest {
			return certRequest(axLink, append(longLivedCA(t, "a"), longLivedCA(t, "b")...))
		}, reason: v1alpha1.ReasonInvalidTransportCA},
		{name: "the model turned off on this agent", prepare: func(_ *testing.T, f *answerFixture) { f.e.cfg.CertificateModel = false },
			req: func(t *testing.T) *peerv1.ImportRequest { return certRequest(axLink, longLivedCA(t, "east")) }, reason: v1alpha1.ReasonCertificateModelDisabled},
		{name: "the consumer asks for the API-key model", req: func(*testing.T) *peerv1.ImportRequest {
			r := certRequest(axLink, nil)
			r.Model = peerv1.SecurityModel_SECURITY_MODEL_API_KEY
			return r
		}, reason: v1alpha1.ReasonModelNotAllowed},
		{name: "the exported Elasticsearch is gone", prepare: func(t *testing.T, f *answerFixture) {
			if err := f.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(axNS).Delete(t.Context(), axES, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { _, ok := f.e.cfg.Cache.Elasticsearch(axNS, axES); return !ok })
		}, req: func(t *testing.T) *peerv1.ImportRequest { return certRequest(axLink, longLivedCA(t, "east")) }, reason: v1alpha1.ReasonElasticsearchNotFound},
		{name: "no transport address", prepare: func(t *testing.T, f *answerFixture) {
			x, _ := f.e.cfg.Cache.ClusterExport(axNS, axExport)
			x = x.DeepCopy()
			x.Spec.ProxyAddress = ""
			if _, err := f.CRDs.ClusterExports().Update(t.Context(), x); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				x, ok := f.e.cfg.Cache.ClusterExport(axNS, axExport)
				return ok && x.Spec.ProxyAddress == ""
			})
		}, req: func(t *testing.T) *peerv1.ImportRequest { return certRequest(axLink, longLivedCA(t, "east")) }, reason: "AddressUnresolved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCertFixture(t, "east")
			if tc.prepare != nil {
				tc.prepare(t, f)
			}
			if err := f.e.OnImport("east", tc.req(t)); err != nil {
				t.Fatalf("refused on receipt: %v", err)
			}
			f.pass(t, "east", axLink)
			ref := f.refusalOf("east", axLink)
			if ref == nil || ref.GetReason() != tc.reason {
				t.Fatalf("answer %v, want a refusal %s", f.held("east", link.Resource(link.KindCredentials, axLink)), tc.reason)
			}
			if cm, owners := f.trust(t); cm != nil || len(owners) != 0 {
				t.Errorf("transport trust written for a refused link: owners %v", owners)
			}
			if n := len(f.node.APIKeys()); n != 0 {
				t.Errorf("%d keys made for a refused certificate-model link", n)
			}
		})
	}
}

// TestCertificateTrustFollowsTheLink: the consumer's CA leaves the transport trust when its link
// is refused after a good answer, when the peer removes the import, and when the export is
// deleted; another peer's CA stays until its own link goes.
func TestCertificateTrustFollowsTheLink(t *testing.T) {
	northLink := link.ID{Namespace: "apps", Elasticsearch: "search", Alias: "west-logs"}
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, f *answerFixture)
		// northStays: north's CA is still trusted after east's link ended.
		northStays bool
	}{
		{name: "refused after a good answer", northStays: true, end: func(t *testing.T, f *answerFixture) {
			if err := f.e.OnImport("east", certRequest(axLink, selfSignedPEM(t, false, time.Now()))); err != nil {
				t.Fatal(err)
			}
			f.pass(t, "east", axLink)
			if r := f.refusalOf("east", axLink); r == nil || r.GetReason() != v1alpha1.ReasonInvalidTransportCA {
				t.Fatalf("answer to a leaf CA %v, want InvalidTransportCA", r)
			}
		}},
		{name: "import removed", northStays: true, end: func(t *testing.T, f *answerFixture) {
			f.e.OnImportRemoved("east", axLink)
			f.pass(t, "east", axLink)
		}},
		{name: "export deleted", end: func(t *testing.T, f *answerFixture) {
			x, _ := f.e.cfg.Cache.ClusterExport(axNS, axExport)
			if err := f.e.finalizeExport(t.Context(), x); err != nil {
				t.Fatalf("finalize: %v", err)
			}
		}},
		{name: "export moved to the API-key model (garbage collection)", end: func(t *testing.T, f *answerFixture) {
			x, _ := f.e.cfg.Cache.ClusterExport(axNS, axExport)
			x = x.DeepCopy()
			x.Spec.Model = v1alpha1.SecurityModelAPIKey
			if _, err := f.CRDs.ClusterExports().Update(t.Context(), x); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				x, ok := f.e.cfg.Cache.ClusterExport(axNS, axExport)
				return ok && x.Spec.Model == v1alpha1.SecurityModelAPIKey
			})
			if err := f.e.collectGarbage(t.Context()); err != nil {
				t.Fatalf("collectGarbage: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCertFixture(t, "east", "north")
			eastCA, northCA := longLivedCA(t, "east-transport"), longLivedCA(t, "north-transport")
			f.importCert(t, "east", axLink, eastCA)
			f.importCert(t, "north", northLink, northCA)
			if _, owners := f.trust(t); len(owners) != 2 {
				t.Fatalf("owners before %v, want east's and north's", owners)
			}
			waitFor(t, func() bool {
				es, ok := f.e.cfg.Cache.Elasticsearch(axNS, axES)
				return ok && wiring.TransportCAConfigMapOf(es) != ""
			})

			tc.end(t, f)
			cm, owners := f.trust(t)
			if _, ok := owners[trustOwner(axExport, "east", axLink)]; ok {
				t.Errorf("east's CA still trusted: owners %v", owners)
			}
			north := owners[trustOwner(axExport, "north", northLink)]
			if tc.northStays != (len(north) == 1 && north[0] == testenv.Fingerprint(t, northCA)) {
				t.Errorf("north's CA trusted %v, want %v", north, tc.northStays)
			}
			if !tc.northStays && (cm != nil || f.wiredTrust(t)) {
				t.Errorf("with no owner left: ConfigMap %v, wired %v; want both gone", cm != nil, f.wiredTrust(t))
			}
		})
	}
}

// TestCertificateTrustWriteFails: when the transport CA ConfigMap cannot be written, the pass
// fails (retried) and the peer gets no answer claiming the trust; the retry answers.
func TestCertificateTrustWriteFails(t *testing.T) {
	f := newCertFixture(t, "east")
	fail := fakekube.FailWhile(f.Kube, "create", "configmaps", errors.New("etcd unavailable"))
	if err := f.e.OnImport("east", certRequest(axLink, longLivedCA(t, "east-transport"))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.reconcileLink(t.Context(), "east", axLink); err == nil {
		t.Fatal("the pass succeeded although the trust could not be written")
	}
	if m := f.held("east", link.Resource(link.KindCredentials, axLink)); m != nil {
		t.Fatalf("answer sent without the trust in place: %v", m)
	}
	fail.Store(false)
	f.pass(t, "east", axLink)
	if c := f.credentials("east", axLink); c == nil || c.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE {
		t.Fatalf("no certificate answer after the retry: %v", f.held("east", link.Resource(link.KindCredentials, axLink)))
	}
	if _, owners := f.trust(t); len(owners) != 1 {
		t.Errorf("owners after the retry %v, want east's", owners)
	}
}

// TestTrustUnjustified: why the trust sweep removes a peer CA of the export data/logs, for each
// owner and what this agent knows of its link ("" keeps it).
func TestTrustUnjustified(t *testing.T) {
	owner := trustOwner(axExport, "east", axLink)
	for _, tc := range []struct {
		name, owner string
		// held is the model the link held in memory asks for (nil: the link is not held).
		held      *peerv1.SecurityModel
		inventory bool // the peer's inventory arrived
		want      string
	}{
		{name: "the importer's owner", owner: "rc/apps/ccs/west-logs", want: ""},
		{name: "malformed", owner: "export/logs/east", want: "malformed owner"},
		{name: "peer gone", owner: trustOwner(axExport, "south", axLink), want: "peer south is gone"},
		{name: "export gone", owner: trustOwner("other", "east", axLink), want: "export data/other is gone"},
		{name: "link not held, no inventory yet", owner: owner, want: ""},
		{name: "link not held, not in the inventory", owner: owner, inventory: true, want: "peer east no longer imports link " + axLink.String()},
		{name: "link asks for the certificate model", owner: owner, held: new(askCert), inventory: true, want: ""},
		{name: "link asks for no model (0.1.0)", owner: owner, held: new(unspecified), want: ""},
		{name: "link asks for the API-key model", owner: owner, held: new(askKey), want: "link " + axLink.String() + " asks for the apiKey model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCertFixture(t, "east")
			f.e.mu.Lock()
			if tc.held != nil {
				req := certRequest(axLink, nil)
				req.Model = *tc.held
				f.e.links["east"] = map[link.ID]*linkState{axLink: {req: req}}
			}
			f.e.inventry["east"] = tc.inventory
			f.e.mu.Unlock()
			if got := f.e.trustUnjustified(axNS, tc.owner); got != tc.want {
				t.Errorf("trustUnjustified(%s) = %q, want %q", tc.owner, got, tc.want)
			}
		})
	}
}
