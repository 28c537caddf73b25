package importer

import (
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Strong identity through the full reconcile, local side: the agent issues the local
// Elasticsearch (9.3+) its signing certificate, points the alias's signing settings at the
// mounted files only once the peer says its Elasticsearch trusts the active signing CA, reports
// the subject it signs with to the peer, and stops signing only once the key no longer requires
// an identity.

// activeSigningCA is the fingerprint of the importer's active signing CA (after a pass loaded it).
func (f *fixture) activeSigningCA(t *testing.T) string {
	t.Helper()
	f.im.signer.mu.Lock()
	defer f.im.signer.mu.Unlock()
	if f.im.signer.auth == nil {
		t.Fatal("no signing CA loaded")
	}
	return pemutil.Fingerprint(f.im.signer.auth.ActiveCA())
}

// signingCredentials are API-key credentials of logs with the strong identity fields.
func signingCredentials(t *testing.T, ca []byte, strong, required bool, trusted ...string) *peerv1.Credentials {
	c := apiKeyCredentials("logs", "key-1", ca)
	c.StrongIdentity, c.IdentityRequired, c.SigningTrustedFingerprints = strong, required, trusted
	return c
}

// signingSettings are the alias's signing settings in Elasticsearch.
func (f *fixture) signingSettings(t *testing.T) elastic.Signing {
	t.Helper()
	all, err := f.es.GetRemoteSettings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return elastic.SigningOf(all["logs"])
}

var linkID = link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}

func (f *fixture) linkStatus() *peerv1.LinkStatus {
	ls, _ := f.outbox.get(link.Resource(link.KindStatus, linkID)).(*peerv1.LinkStatus)
	return ls
}

// TestStrongIdentityThroughThePass: the steps of enabling and disabling strong identity, each
// with the signing settings, the StrongIdentity condition and what the peer is told.
func TestStrongIdentityThroughThePass(t *testing.T) {
	f := newFixture(t, remoteCluster("logs", ""))
	f.connectAll()
	ca := newTestCA(t, "west-transport")
	seq := uint64(0)
	send := func(c *peerv1.Credentials) {
		t.Helper()
		seq++
		if err := f.im.OnCredentials(fxPeer, seq, c); err != nil {
			t.Fatalf("credentials %d refused: %v", seq, err)
		}
		f.reconcile(t)
		f.settle(t)
	}
	ours := elastic.Signing{Certificate: wiring.SigningCertPath, Key: wiring.SigningKeyPath}

	// 1. The export requires strong identity; the peer does not trust the CA yet.
	send(signingCredentials(t, ca, true, false))
	sec, err := f.Kube.CoreV1().Secrets(fxNS).Get(t.Context(), wiring.SigningSecretName(fxES), metav1.GetOptions{})
	if err != nil || len(sec.Data[corev1.TLSCertKey]) == 0 || len(sec.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Fatalf("signing certificate Secret %v (%v), want tls.crt and tls.key", sec, err)
	}
	if s := f.signingSettings(t); s != (elastic.Signing{}) {
		t.Errorf("signing settings %+v before the peer trusts the CA", s)
	}
	c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity)
	if c == nil || c.Reason != v1alpha1.ReasonStrongIdentityPending || !strings.Contains(c.Message, "waiting for the remote Elasticsearch to trust") {
		t.Errorf("StrongIdentity %+v, want Pending on the remote's trust", c)
	}
	if f.linkStatus().GetSigningSubject() != "" {
		t.Errorf("link status names subject %q before signing", f.linkStatus().GetSigningSubject())
	}

	// A fingerprint that is not the active CA's changes nothing.
	send(signingCredentials(t, ca, true, false, strings.Repeat("ab", 32)))
	if s := f.signingSettings(t); s != (elastic.Signing{}) {
		t.Errorf("signing settings %+v with another CA trusted", s)
	}

	// 2. The peer trusts the active CA: the alias signs, the peer is told the subject.
	active := f.activeSigningCA(t)
	send(signingCredentials(t, ca, true, false, active))
	if s := f.signingSettings(t); s != ours {
		t.Fatalf("signing settings %+v, want the mounted files", s)
	}
	subject := f.linkStatus().GetSigningSubject()
	if !strings.Contains(subject, fxES+"."+fxNS+".east") {
		t.Errorf("link status subject %q, want this Elasticsearch's", subject)
	}
	if c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity); c == nil || c.Reason != v1alpha1.ReasonStrongIdentityPending || !strings.Contains(c.Message, "requests are signed as "+subject) {
		t.Errorf("StrongIdentity %+v, want Pending naming the subject", c)
	}

	// 3. The key requires the identity: enforced.
	send(signingCredentials(t, ca, true, true, active))
	if c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity); c == nil || c.Reason != v1alpha1.ReasonStrongIdentityEnforced {
		t.Errorf("StrongIdentity %+v, want Enforced", c)
	}

	// 4. Disabling: while the key still requires it, the alias keeps signing.
	send(signingCredentials(t, ca, false, true))
	if s := f.signingSettings(t); s != ours {
		t.Errorf("signing stopped (%+v) while the key still requires the identity", s)
	}
	if c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity); c == nil || c.Reason != v1alpha1.ReasonStrongIdentityDisabling {
		t.Errorf("StrongIdentity %+v, want Disabling", c)
	}

	// 5. The identity is gone from the key: the signing settings go, and the condition.
	send(signingCredentials(t, ca, false, false))
	if s := f.signingSettings(t); s != (elastic.Signing{}) {
		t.Errorf("signing settings %+v after strong identity ended", s)
	}
	if c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity); c != nil {
		t.Errorf("StrongIdentity %+v left after strong identity ended", c)
	}
	if f.linkStatus().GetSigningSubject() != "" {
		t.Errorf("link status still names subject %q", f.linkStatus().GetSigningSubject())
	}
}

// TestStrongIdentityWaits: when the alias cannot sign yet, the pass succeeds, the settings stay
// as they are and the condition says why.
func TestStrongIdentityWaits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, f *fixture, missing *atomic.Bool)
		message string
		// want are the alias's signing settings after the pass.
		want elastic.Signing
	}{
		{name: "certificate not visible in the nodes yet", prepare: func(_ *testing.T, f *fixture, missing *atomic.Bool) {
			missing.Store(true)
		}, message: "not visible in every node yet"},
		{name: "signing settings of the user", prepare: func(t *testing.T, f *fixture, _ *atomic.Bool) {
			if _, err := f.es.PutSigning(t.Context(), "logs", elastic.Signing{Certificate: "user/cert.pem", Key: "user/key.pem"}); err != nil {
				t.Fatal(err)
			}
		}, message: "signing settings that ecklink did not write", want: elastic.Signing{Certificate: "user/cert.pem", Key: "user/key.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			var missing atomic.Bool
			f.node.SetFileFunc(func(p string) (string, bool) {
				return p, !(missing.Load() && strings.Contains(p, "signing"))
			})
			ca := newTestCA(t, "west-transport")
			if err := f.im.OnCredentials(fxPeer, 1, signingCredentials(t, ca, true, false)); err != nil {
				t.Fatal(err)
			}
			f.reconcile(t)
			f.settle(t)
			tc.prepare(t, f, &missing)
			if err := f.im.OnCredentials(fxPeer, 2, signingCredentials(t, ca, true, false, f.activeSigningCA(t))); err != nil {
				t.Fatal(err)
			}
			if err := f.tryReconcile(t); err != nil {
				t.Fatalf("the pass failed: %v", err)
			}
			if s := f.signingSettings(t); s != tc.want {
				t.Errorf("signing settings %+v, want %+v", s, tc.want)
			}
			c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionStrongIdentity)
			if c == nil || c.Reason != v1alpha1.ReasonStrongIdentityPending || !strings.Contains(c.Message, tc.message) {
				t.Errorf("StrongIdentity %+v, want Pending saying %q", c, tc.message)
			}
			if f.linkStatus().GetSigningSubject() != "" {
				t.Errorf("link status names subject %q although the alias does not sign", f.linkStatus().GetSigningSubject())
			}
		})
	}
}
