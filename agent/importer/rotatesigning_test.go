package importer

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// requestSigningRotation writes a signing rotation request as agentctl rotate signing does.
func (f *fixture) requestSigningRotation(t *testing.T, id string) {
	t.Helper()
	cms := f.Kube.CoreV1().ConfigMaps(fxAgentNS)
	cm, err := cms.Get(t.Context(), identity.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		cm, err = cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: identity.ConfigMapName, Namespace: fxAgentNS}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[signing.AnnotationRotateRequest] = id
	if _, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// signingStatus reads the agent's report on the signing rotation request.
func (f *fixture) signingStatus(t *testing.T) signing.RotationStatus {
	t.Helper()
	cm, err := f.Kube.CoreV1().ConfigMaps(fxAgentNS).Get(t.Context(), identity.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st signing.RotationStatus
	if err := json.Unmarshal([]byte(cm.Annotations[signing.AnnotationRotateStatus]), &st); err != nil {
		t.Fatalf("status annotation %q: %v", cm.Annotations[signing.AnnotationRotateStatus], err)
	}
	return st
}

func (f *fixture) tickSigning(t *testing.T) {
	t.Helper()
	if err := f.im.tickSigning(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestRotateSigningOnRequest: a signing rotation request is refused while the agent has no signing
// CA; once it has one, the request stages a new CA, which waits until every peer requiring strong
// identity trusts it, then signs (Done, old -> new, stored in the CA Secret); the same request is
// not answered twice.
func TestRotateSigningOnRequest(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.requestSigningRotation(t, "r0")
	f.tickSigning(t)
	if st := f.signingStatus(t); st.Request != "r0" || st.Phase != signing.RotationFailed || !strings.Contains(st.Message, "no signing CA") {
		t.Fatalf("status without a signing CA: %+v", st)
	}

	f.im.signer.mu.Lock()
	a, err := f.im.authority(t.Context())
	f.im.signer.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	old := pemutil.Fingerprint(a.ActiveCA())
	// A peer requires strong identity and trusts only the active CA so far.
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	f.im.mu.Lock()
	f.im.answers[id] = &received{peer: fxPeer, creds: &peerv1.Credentials{StrongIdentity: true, SigningTrustedFingerprints: []string{old}}}
	f.im.mu.Unlock()

	f.requestSigningRotation(t, "r1")
	f.tickSigning(t)
	st := f.signingStatus(t)
	if st.Request != "r1" || st.Phase != signing.RotationStaged || st.OldCA != old || st.NewCA == "" || st.NewCA == old {
		t.Fatalf("status once staged: %+v", st)
	}
	staged := st.NewCA
	f.tickSigning(t)
	if st := f.signingStatus(t); st.Phase != signing.RotationStaged {
		t.Fatalf("promoted before the peer trusts the new CA: %+v", st)
	}

	f.im.mu.Lock()
	f.im.answers[id].creds.SigningTrustedFingerprints = []string{old, staged}
	f.im.mu.Unlock()
	f.tickSigning(t)
	st = f.signingStatus(t)
	if st.Phase != signing.RotationDone || st.OldCA != old || st.NewCA != staged {
		t.Fatalf("status once trusted: %+v, want Done %s -> %s", st, old, staged)
	}
	sec, err := f.Kube.CoreV1().Secrets(fxAgentNS).Get(t.Context(), SigningCASecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pemutil.ParseCertificates(sec.Data[signing.KeyCACert], pemutil.Limits{})
	if err != nil || len(stored) != 1 || pemutil.Fingerprint(stored[0]) != staged {
		t.Fatalf("stored active CA is not the new one (%v)", err)
	}
	f.tickSigning(t)
	if got := pemutil.Fingerprint(f.im.signer.auth.ActiveCA()); got != staged || f.im.signer.auth.StagedCA() != nil {
		t.Fatalf("the answered request rotated again: active %s, staged %v", got, f.im.signer.auth.StagedCA() != nil)
	}
}
