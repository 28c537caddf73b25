package importer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/transporttrust"
	"github.com/ecklink/ecklink/agent/wiring"
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
		if _, err := f.kc.CoreV1().ConfigMaps(fxNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
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
	cm, err := f.kc.CoreV1().ConfigMaps(fxNS).Get(t.Context(), userTransportCM, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return cm
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
	if got := trustedFingerprints(t, cm, "logs"); len(got) != 1 || got[0] != fingerprintOf(t, creds.CaBundle) {
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
	if _, err := f.kc.CoreV1().ConfigMaps(fxNS).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
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
