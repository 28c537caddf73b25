package transporttrust

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/internal/pemutil"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newCA makes a self-signed CA valid from an hour before now until notAfter.
func newCA(t *testing.T, cn string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	return testenv.New(t, testenv.Spec{CN: cn, Serial: time.Now().UnixNano(), NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		IsCA: true, KeyUsage: x509.KeyUsageCertSign}).Cert
}

func pemOf(c *x509.Certificate) string {
	return string(testenv.Cert{DER: c.Raw}.PEM())
}

// fingerprints lists the certificates of cm's bundle in order.
func fingerprints(t *testing.T, cm *corev1.ConfigMap) []string {
	t.Helper()
	certs, err := pemutil.ParseCertificates([]byte(cm.Data[Key]), pemutil.Limits{})
	if err != nil {
		t.Fatalf("bundle does not parse: %v\n%s", err, cm.Data[Key])
	}
	var out []string
	for _, c := range certs {
		out = append(out, pemutil.Fingerprint(c))
	}
	return out
}

func fp(c *x509.Certificate) string { return pemutil.Fingerprint(c) }

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestUpdateJoinKeepsUserContentAndLeaveRemovesOnlyOurs(t *testing.T) {
	later := now.Add(24 * time.Hour)
	user1, user2 := newCA(t, "user-1", later), newCA(t, "user-2", later)
	peer := newCA(t, "peer", later)
	userText := "# our partner's CA\n" + pemOf(user1) + "\n# and another one\n" + pemOf(user2)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "user-cas", Namespace: "ns"}, Data: map[string]string{Key: userText}}

	changed, err := Update(cm, map[string][]*x509.Certificate{"export/east/a/ccs/x": {peer}}, now)
	if err != nil || !changed {
		t.Fatalf("join: changed=%v err=%v", changed, err)
	}
	if !strings.HasPrefix(cm.Data[Key], userText) {
		t.Errorf("the user's text is not kept byte for byte:\n%s", cm.Data[Key])
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(user1), fp(user2), fp(peer)}) {
		t.Errorf("bundle = %v", got)
	}
	owners, _ := Owners(cm)
	if !equal(owners["export/east/a/ccs/x"], []string{fp(peer)}) || len(owners) != 1 {
		t.Errorf("owners = %v", owners)
	}

	// Idempotent: the same change again changes nothing.
	before := cm.DeepCopy()
	if changed, err := Update(cm, map[string][]*x509.Certificate{"export/east/a/ccs/x": {peer}}, now); err != nil || changed {
		t.Fatalf("second join: changed=%v err=%v", changed, err)
	}
	if cm.Data[Key] != before.Data[Key] || cm.Annotations[AnnotationCAs] != before.Annotations[AnnotationCAs] {
		t.Error("second join rewrote the ConfigMap")
	}

	// The user edits their part meanwhile: a third CA before ours.
	user3 := newCA(t, "user-3", later)
	cm.Data[Key] = strings.Replace(cm.Data[Key], pemOf(peer), pemOf(user3)+pemOf(peer), 1)

	// Leave: only our CA goes; the user's three and their comments stay.
	if changed, err := Update(cm, map[string][]*x509.Certificate{"export/east/a/ccs/x": nil}, now); err != nil || !changed {
		t.Fatalf("leave: changed=%v err=%v", changed, err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(user1), fp(user2), fp(user3)}) {
		t.Errorf("bundle after leave = %v", got)
	}
	if !strings.HasPrefix(cm.Data[Key], userText) {
		t.Errorf("the user's text changed:\n%s", cm.Data[Key])
	}
	if _, ok := cm.Annotations[AnnotationCAs]; ok {
		t.Errorf("annotation left behind: %v", cm.Annotations)
	}
	// Leaving again is a no-op.
	if changed, _ := Update(cm, map[string][]*x509.Certificate{"export/east/a/ccs/x": nil}, now); changed {
		t.Error("second leave changed the ConfigMap")
	}
}

func TestUpdateNeverClaimsOrRemovesAUserCA(t *testing.T) {
	later := now.Add(24 * time.Hour)
	shared, peer := newCA(t, "shared", later), newCA(t, "peer", later)
	cm := &corev1.ConfigMap{Data: map[string]string{Key: pemOf(shared)}}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/x": {shared, peer}}, now); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(shared), fp(peer)}) {
		t.Errorf("bundle = %v (the user's copy must not be duplicated)", got)
	}
	owners, _ := Owners(cm)
	if !equal(owners["import/x"], []string{fp(peer)}) {
		t.Errorf("owner import/x records %v, want only the CA it added", owners["import/x"])
	}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/x": nil}, now); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(shared)}) {
		t.Errorf("bundle after leave = %v, want the user's CA only", got)
	}
}

func TestUpdateOwnersShareACAAndKeepPreviousUntilExpiry(t *testing.T) {
	ca1 := newCA(t, "peer", now.Add(2*time.Minute))
	ca2 := newCA(t, "peer", now.Add(3*time.Minute))
	cm := &corev1.ConfigMap{}
	// Two links of the same peer Elasticsearch need the same CA.
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {ca1}, "import/b": {ca1}}, now); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(ca1)}) {
		t.Fatalf("bundle = %v, want the shared CA once", got)
	}
	// The peer rotated: a's new CA joins, the previous one stays while valid.
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {ca2}}, now); err != nil {
		t.Fatal(err)
	}
	owners, _ := Owners(cm)
	if !equal(owners["import/a"], []string{fp(ca2), fp(ca1)}) {
		t.Errorf("import/a = %v, want new then previous", owners["import/a"])
	}
	// b leaves: ca1 stays, a still holds it.
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/b": nil}, now); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(ca2), fp(ca1)}) {
		t.Errorf("bundle = %v", got)
	}
	// Once ca1 expired, the next update of a drops it.
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {ca2}}, now.Add(150*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(ca2)}) {
		t.Errorf("bundle = %v, want the expired CA gone", got)
	}
}

func TestUpdateBoundsRetainedCAs(t *testing.T) {
	cm := &corev1.ConfigMap{}
	var last *x509.Certificate
	for i := range pemutil.MaxRetainedCAs + 4 {
		last = newCA(t, "peer", now.Add(time.Duration(i+1)*time.Hour))
		if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {last}}, now); err != nil {
			t.Fatal(err)
		}
	}
	owners, _ := Owners(cm)
	if n := len(owners["import/a"]); n != pemutil.MaxRetainedCAs || owners["import/a"][0] != fp(last) {
		t.Errorf("kept %d CAs (first %s), want %d starting with the newest", n, owners["import/a"][0][:8], pemutil.MaxRetainedCAs)
	}
}

func TestUpdateAddsNewlineBeforeOurBlocks(t *testing.T) {
	user, peer := newCA(t, "user", now.Add(time.Hour)), newCA(t, "peer", now.Add(time.Hour))
	cm := &corev1.ConfigMap{Data: map[string]string{Key: strings.TrimSuffix(pemOf(user), "\n")}}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {peer}}, now); err != nil {
		t.Fatal(err)
	}
	if got := fingerprints(t, cm); !equal(got, []string{fp(user), fp(peer)}) {
		t.Errorf("bundle = %v", got)
	}
}

func TestUpdateRefusesAMalformedRecord(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationCAs: "{not json"}}}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": nil}, now); err == nil {
		t.Error("want an error for a malformed annotation")
	}
}

func TestSplitKeepsMalformedTextAsIs(t *testing.T) {
	peer := newCA(t, "peer", now.Add(time.Hour))
	junk := "-----BEGIN CERTIFICATE-----\nnot base64 !\n-----END CERTIFICATE-----\n"
	cm := &corev1.ConfigMap{Data: map[string]string{Key: junk}}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": {peer}}, now); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cm.Data[Key], junk) {
		t.Errorf("the user's malformed block was changed:\n%s", cm.Data[Key])
	}
	if _, err := Update(cm, map[string][]*x509.Certificate{"import/a": nil}, now); err != nil {
		t.Fatal(err)
	}
	if cm.Data[Key] != junk {
		t.Errorf("after leave: %q, want the user's text", cm.Data[Key])
	}
}

// TestOwnCAs: the memory answers as OwnCA does, for a bundle it holds as for a new one, and
// refuses a CA outside its validity as OwnCA does (it is parsed again then).
func TestOwnCAs(t *testing.T) {
	bundle := []byte(pemOf(newCA(t, "own", now.Add(time.Hour))) + pemOf(newCA(t, "other", now.Add(time.Hour))))
	var o OwnCAs
	for i := range 3 {
		want, wantErr := OwnCA(bundle, now)
		got, err := o.Of(bundle, now)
		if err != nil || wantErr != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d: %q, %v; OwnCA gives %q, %v", i, got, err, want, wantErr)
		}
	}
	if _, err := o.Of(bundle, now.Add(2*time.Hour)); err == nil {
		t.Error("a CA past its NotAfter was served from the memory")
	}
	if _, err := o.Of([]byte("not pem"), now); err == nil {
		t.Error("a bundle without PEM was accepted")
	}
}
