package importer

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
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
	before, err := f.im.cfg.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(fxNS).Get(t.Context(), fxES, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
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
	cms, err := f.kc.CoreV1().ConfigMaps(fxNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 0 {
		t.Errorf("ConfigMaps written for refused credentials: %v", cms.Items)
	}
	after, err := f.im.cfg.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(fxNS).Get(t.Context(), fxES, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
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
	if p := f.im.plan(fxNS, fxES)[0]; !p.certificate() {
		t.Fatal("the certificate link is not planned with the certificate model")
	}
	rc := f.remoteCluster(t, "switching")
	rc.Spec.Model = v1alpha1.SecurityModelAPIKey
	if _, err := f.crds.RemoteClusters().Update(t.Context(), rc); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		rcs := f.im.cfg.Cache.RemoteClusters()
		return len(rcs) == 1 && rcs[0].Spec.Model == v1alpha1.SecurityModelAPIKey
	})
	p := f.im.plan(fxNS, fxES)[0]
	if p.certificate() || p.desired() || p.answer.refusal.GetReason() != v1alpha1.ReasonModelNotAllowed {
		t.Fatalf("after the switch to apiKey: certificate=%v desired=%v answer=%+v", p.certificate(), p.desired(), p.answer)
	}
}
