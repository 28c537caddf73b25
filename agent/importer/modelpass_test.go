package importer

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// modelCase is one security model as a test drives it: a RemoteCluster asking for it, what its
// peer answers, and where the answer ends up.
type modelCase struct {
	spec  v1alpha1.SecurityModel
	creds func(t *testing.T) *peerv1.Credentials
	proxy string
}

func modelCases() []modelCase {
	return []modelCase{
		{v1alpha1.SecurityModelAPIKey, func(t *testing.T) *peerv1.Credentials {
			return apiKeyCredentials("logs", "key-1", newTestCA(t, "west-remote"))
		}, testProxy},
		{v1alpha1.SecurityModelCertificate, func(t *testing.T) *peerv1.Credentials { return certificateCredentials(t, "logs") }, certProxy},
	}
}

// holds reports what of a model the fixture's Kubernetes holds for alias logs: an API key in the
// credentials Secret, or the peer CA in the transport trust.
func (f *fixture) holds(t *testing.T, m v1alpha1.SecurityModel) bool {
	t.Helper()
	if m == v1alpha1.SecurityModelCertificate {
		return len(trustedFingerprints(t, f.transportTrust(t), "logs")) > 0
	}
	return f.applied(t).key("logs") != ""
}

// TestImportRequestByModel: each model adds its own part to the import request: the API-key
// model a rotation request, the certificate model the local transport CA; neither adds the
// other's.
func TestImportRequestByModel(t *testing.T) {
	for _, tc := range modelCases() {
		t.Run(string(tc.spec), func(t *testing.T) {
			rc := remoteCluster("logs", tc.spec)
			rc.Annotations = map[string]string{v1alpha1.AnnotationRotateKeyRequest: "now-1"}
			f := newFixture(t, rc)
			f.eckCopiesTrust(t) // ECK's transport certificates: the local CA
			f.reconcile(t)
			req, ok := f.outbox.get(link.Resource(link.KindImport, link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"})).(*peerv1.ImportRequest)
			if !ok {
				t.Fatal("no import request published")
			}
			cert := tc.spec == v1alpha1.SecurityModelCertificate
			if req.GetModel() != modelOf(rc).wire() || (len(req.GetTransportCaBundle()) > 0) != cert || (req.GetKeyRotationRequest() == "now-1") == cert {
				t.Errorf("request model %v, transport CA %d bytes, rotation request %q", req.GetModel(), len(req.GetTransportCaBundle()), req.GetKeyRotationRequest())
			}
		})
	}
}

// TestApplyByModel: a pass applies each model's answer with that model's pass only (its objects,
// its settings, its status and conditions), and once the RemoteCluster moves to the other model
// and its peer answers so, the next pass applies the new model and releases what the old one held.
func TestApplyByModel(t *testing.T) {
	cases := modelCases()
	for i, from := range cases {
		to := cases[1-i]
		t.Run(string(from.spec), func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", from.spec))
			f.connectAll()
			f.applyModel(t, from, 1)
			if f.holds(t, to.spec) {
				t.Errorf("%s objects written for a %s link", to.spec, from.spec)
			}

			rc := f.remoteCluster(t, "logs")
			rc.Spec.Model = to.spec
			if _, err := f.CRDs.RemoteClusters().Update(t.Context(), rc); err != nil {
				t.Fatal(err)
			}
			waitCache(t, func() bool {
				rcs := f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)
				return len(rcs) == 1 && rcs[0].Spec.Model == to.spec
			})
			f.applyModel(t, to, 2)
			if f.holds(t, from.spec) {
				t.Errorf("%s objects left after the move to %s", from.spec, to.spec)
			}
		})
	}
}

// applyModel sends the answer of tc's model as sequence seq, runs a pass, and checks what the
// model applied and reports.
func (f *fixture) applyModel(t *testing.T, tc modelCase, seq uint64) {
	t.Helper()
	if err := f.im.OnCredentials(fxPeer, seq, tc.creds(t)); err != nil {
		t.Fatalf("%s credentials refused: %v", tc.spec, err)
	}
	f.reconcile(t)
	f.settle(t)
	if !f.holds(t, tc.spec) {
		t.Errorf("nothing of the %s answer applied", tc.spec)
	}
	if s, ok := f.applied(t).settings["logs"]; !ok || s.Mode != "proxy" || s.ProxyAddress != tc.proxy {
		t.Errorf("settings of logs %+v (present %v), want proxy mode to %s", s, ok, tc.proxy)
	}
	rc := f.remoteCluster(t, "logs")
	cert := tc.spec == v1alpha1.SecurityModelCertificate
	if rc.Status.Model != tc.spec || rc.Status.AppliedSequence != int64(seq) {
		t.Errorf("status.model %s, appliedSequence %d; want %s, %d", rc.Status.Model, rc.Status.AppliedSequence, tc.spec, seq)
	}
	deprecated := meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionSecurityModelCurrent) != nil
	licensed := meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionLicenseSufficient) != nil
	credentials := meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionCredentialsApplied)
	if deprecated != cert || licensed == cert || credentials == nil || (credentials.Reason == v1alpha1.ReasonCertificateModel) != cert {
		t.Errorf("deprecation warning %v, license condition %v, CredentialsApplied %+v", deprecated, licensed, credentials)
	}
}

// TestBothModelsReadElasticsearchOnce: a pass over an Elasticsearch with links of both models
// reads the remote cluster settings and _remote/info once each (each model's pass read both
// before), and a pass that writes settings reads _remote/info after its write, not before.
func TestBothModelsReadElasticsearchOnce(t *testing.T) {
	const (
		getSettings = "GET /_cluster/settings"
		getInfo     = "GET /_remote/info"
	)
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelAPIKey), remoteCluster("metrics", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	f.eckCopiesTrust(t)
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == 2 })
	if err := f.im.OnCredentials(fxPeer, 1, apiKeyCredentials("logs", "key-1", newTestCA(t, "west-remote"))); err != nil {
		t.Fatal(err)
	}
	if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "metrics")); err != nil {
		t.Fatal(err)
	}
	for pass := range 3 {
		f.requests.Take()
		puts := f.settingsPuts()
		f.reconcile(t)
		f.settle(t)
		wrote := f.settingsPuts() > puts
		got := f.requests.Take()
		// A write invalidates what the pass read, so the read after it is the pass's second.
		want := 1
		if wrote {
			want = 2
		}
		if got[getInfo] < 1 || got[getInfo] > want || got[getSettings] < 1 || got[getSettings] > want {
			t.Errorf("pass %d (settings written: %v): %d %s, %d %s; want 1 each without a write, at most 2 with one", pass, wrote, got[getInfo], getInfo, got[getSettings], getSettings)
		}
		if pass == 2 && (wrote || got[getInfo] != 1 || got[getSettings] != 1) {
			t.Errorf("steady pass: settings written %v, %d %s, %d %s; want no write and one read each", wrote, got[getInfo], getInfo, got[getSettings], getSettings)
		}
	}
	for _, alias := range []string{"logs", "metrics"} {
		if got := f.reasons(t, alias)[v1alpha1.ConditionConnected]; got != v1alpha1.ReasonRemoteConnected {
			t.Errorf("Connected of %s %q, want %s", alias, got, v1alpha1.ReasonRemoteConnected)
		}
	}
}
