package importer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The certificate model with a transport CA ConfigMap of the user's (named by the Elasticsearch's
// spec.transport.tls.certificateAuthorities before ecklink came): the peer's CA joins it, the
// user's content stays byte for byte, ecklink creates and wires nothing of its own; a named
// ConfigMap that does not exist fails the pass and writes nothing.

const userTransportCM = "user-transport-cas"

// nameUserTransportCA makes the Elasticsearch name the user's ConfigMap, holding userPEM unless
// nil (then the ConfigMap does not exist).
func (f *fixture) nameUserTransportCA(t *testing.T, userPEM []byte) {
	t.Helper()
	ctx := t.Context()
	if userPEM != nil {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: userTransportCM}, Data: map[string]string{transporttrust.Key: string(userPEM)}}
		if _, err := f.Kube.CoreV1().ConfigMaps(fxNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	res := f.im.cfg.Dynamic.Resource(eck.ElasticsearchGVR).Namespace(fxNS)
	es, err := res.Get(ctx, fxES, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(es.Object, userTransportCM, "spec", "transport", "tls", "certificateAuthorities", "configMapName"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, func() bool {
		got, ok := f.im.cfg.Cache.Elasticsearch(fxNS, fxES)
		return ok && wiring.TransportCAConfigMapOf(got) == userTransportCM
	})
}

func (f *fixture) userTrust(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	return f.storedConfigMap(t, userTransportCM)
}

// TestCertificateTrustInTheUsersConfigMap: the peer's CA joins the ConfigMap the user named,
// after the user's CAs, which stay; ecklink's own ConfigMap is never created and the resource is
// not rewired; settings follow at once (the ConfigMap is already read by ECK). When the link
// ends, only the peer's CA leaves: the user's ConfigMap and wiring stay.
func TestCertificateTrustInTheUsersConfigMap(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	userCA := newTestCA(t, "user-partner-ca")
	f.nameUserTransportCA(t, userCA)
	creds := certificateCredentials(t, "logs")
	if err := f.im.OnCredentials(fxPeer, 1, creds); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)

	cm := f.userTrust(t)
	if cm == nil {
		t.Fatal("the user's ConfigMap is gone")
	}
	if !strings.HasPrefix(cm.Data[transporttrust.Key], string(userCA)) {
		t.Errorf("the user's CA is not kept byte for byte at the start of the bundle:\n%s", cm.Data[transporttrust.Key])
	}
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, creds.CaBundle) {
		t.Errorf("owners of the user's ConfigMap %v, want the peer's CA for logs", got)
	}
	if f.transportTrust(t) != nil {
		t.Error("ecklink created its own transport CA ConfigMap although the user named one")
	}
	a := f.applied(t)
	if wiring.TransportCAConfigMapOf(a.es) != userTransportCM || wiring.TransportCAWiredByUs(a.es) {
		t.Errorf("wiring changed: names %q, wired by us %v", wiring.TransportCAConfigMapOf(a.es), wiring.TransportCAWiredByUs(a.es))
	}
	if s := a.settings["logs"]; s.ProxyAddress != certProxy {
		t.Errorf("settings %+v, want proxy to %s", s, certProxy)
	}
	if r := f.reasons(t, "logs")[v1alpha1.ConditionSettingsApplied]; r != v1alpha1.ReasonApplied {
		t.Errorf("SettingsApplied %q, want Applied", r)
	}

	f.settle(t)
	f.im.OnCredentialsRemoved(fxPeer, linkID)
	f.reconcile(t)
	cm = f.userTrust(t)
	if cm == nil || cm.Data[transporttrust.Key] != string(userCA) {
		t.Fatalf("after the removal the user's ConfigMap is %v, want only the user's CA", cm)
	}
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 0 {
		t.Errorf("the peer's CA is still recorded: %v", got)
	}
	if es := f.applied(t).es; wiring.TransportCAConfigMapOf(es) != userTransportCM {
		t.Errorf("the user's wiring was removed: names %q", wiring.TransportCAConfigMapOf(es))
	}
}

// TestCertificateTrustUsersConfigMapMissing: an Elasticsearch that names a ConfigMap that does
// not exist fails the pass (ECK cannot reconcile its transport certificates either); nothing is
// created under the user's name, no settings are written, and once the user creates it the next
// pass applies the link.
func TestCertificateTrustUsersConfigMapMissing(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	f.nameUserTransportCA(t, nil)
	if err := f.im.OnCredentials(fxPeer, 1, certificateCredentials(t, "logs")); err != nil {
		t.Fatal(err)
	}
	err := f.tryReconcile(t)
	if err == nil || !strings.Contains(err.Error(), userTransportCM) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("pass error %v, want one naming the missing ConfigMap", err)
	}
	if f.userTrust(t) != nil || f.transportTrust(t) != nil {
		t.Error("a ConfigMap was created for a missing user's ConfigMap")
	}
	if _, ok := f.applied(t).settings["logs"]; ok {
		t.Error("settings written without the trust")
	}

	userCA := newTestCA(t, "user-partner-ca")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: fxNS, Name: userTransportCM}, Data: map[string]string{transporttrust.Key: string(userCA)}}
	if _, err := f.Kube.CoreV1().ConfigMaps(fxNS).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	if got := trustedFingerprints(t, f.userTrust(t), "logs"); len(got) != 1 {
		t.Errorf("owners once the ConfigMap exists %v, want the peer's CA", got)
	}
	if s := f.applied(t).settings["logs"]; s.ProxyAddress != certProxy {
		t.Errorf("settings once the ConfigMap exists %+v, want proxy to %s", s, certProxy)
	}
}

// TestCertificateTrustPerAlias: two certificate-model links of one Elasticsearch each own their
// peer's CA in ecklink's ConfigMap; a new CA for one replaces only its own; when one link ends
// only its CA and settings go, and the ConfigMap stays wired for the other.
func TestCertificateTrustPerAlias(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", v1alpha1.SecurityModelCertificate), remoteCluster("metrics", v1alpha1.SecurityModelCertificate))
	f.connectAll()
	logs, metrics := certificateCredentials(t, "logs"), certificateCredentials(t, "metrics")
	metrics.ProxyAddress = "203.0.113.8:9300"
	for i, c := range []*peerv1.Credentials{logs, metrics} {
		if err := f.im.OnCredentials(fxPeer, uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	f.reconcile(t)
	f.settle(t)
	cm := f.transportTrust(t)
	for alias, c := range map[string]*peerv1.Credentials{"logs": logs, "metrics": metrics} {
		if got := trustedFingerprints(t, cm, alias); len(got) != 1 || got[0] != testenv.Fingerprint(t, c.CaBundle) {
			t.Errorf("%s owns %v, want its peer's CA", alias, got)
		}
		if s := f.applied(t).settings[alias]; s.ProxyAddress != c.ProxyAddress {
			t.Errorf("%s settings %+v, want proxy to %s", alias, s, c.ProxyAddress)
		}
	}

	// A renewed CA for metrics replaces metrics' entry only.
	renewed := certificateCredentials(t, "metrics")
	renewed.ProxyAddress = metrics.ProxyAddress
	if err := f.im.OnCredentials(fxPeer, 3, renewed); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	f.settle(t)
	cm = f.transportTrust(t)
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 1 || got[0] != testenv.Fingerprint(t, logs.CaBundle) {
		t.Errorf("logs owns %v after metrics' renewal, want its own CA unchanged", got)
	}
	if got := trustedFingerprints(t, cm, "metrics"); !containsString(got, testenv.Fingerprint(t, renewed.CaBundle)) {
		t.Errorf("metrics owns %v, want the renewed CA among them", got)
	}

	f.im.OnCredentialsRemoved(fxPeer, link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "metrics"})
	f.reconcile(t)
	cm = f.transportTrust(t)
	if got := trustedFingerprints(t, cm, "metrics"); len(got) != 0 {
		t.Errorf("metrics still owns %v after its removal", got)
	}
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 1 {
		t.Errorf("logs owns %v after metrics' removal, want its CA kept", got)
	}
	a := f.applied(t)
	if _, ok := a.settings["metrics"]; ok {
		t.Error("metrics' settings left after its removal")
	}
	if a.settings["logs"].ProxyAddress != certProxy || wiring.TransportCAConfigMapOf(a.es) != wiring.TransportCAConfigMapName(fxES) {
		t.Errorf("logs settings %+v, wiring %q: want both kept", a.settings["logs"], wiring.TransportCAConfigMapOf(a.es))
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
