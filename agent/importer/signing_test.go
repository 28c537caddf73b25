package importer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestPlanLocalSigning(t *testing.T) {
	const fp = "ab:cd"
	for _, tc := range []struct {
		name  string
		creds *peerv1.Credentials
		want  localSigning
	}{
		{name: "no strong identity", creds: &peerv1.Credentials{}, want: signOff},
		{name: "required, CA not trusted yet", creds: &peerv1.Credentials{StrongIdentity: true}, want: signKeep},
		{name: "required, another CA trusted (a staged one)", creds: &peerv1.Credentials{StrongIdentity: true, SigningTrustedFingerprints: []string{"ef"}}, want: signKeep},
		{name: "required, active CA trusted", creds: &peerv1.Credentials{StrongIdentity: true, SigningTrustedFingerprints: []string{"ef", fp}}, want: signOn},
		{name: "disabling, key still requires the identity", creds: &peerv1.Credentials{IdentityRequired: true, SigningTrustedFingerprints: []string{fp}}, want: signKeep},
		{name: "disabled, identity cleared", creds: &peerv1.Credentials{SigningTrustedFingerprints: []string{fp}}, want: signOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planLocalSigning(tc.creds, fp); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSigningCondition(t *testing.T) {
	const subj = "CN=ccs.apps.east,OU=ecklink-signing"
	for _, tc := range []struct {
		name          string
		creds         *peerv1.Credentials
		subject, wait string
		status        metav1.ConditionStatus
		reason, msg   string // msg: a part of the message; reason "" means no condition
	}{
		{name: "no strong identity", creds: &peerv1.Credentials{}},
		{name: "waiting for trust", creds: &peerv1.Credentials{StrongIdentity: true},
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityPending, msg: "waiting for the remote Elasticsearch to trust"},
		{name: "files not visible", creds: &peerv1.Credentials{StrongIdentity: true}, wait: "not visible in every node yet",
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityPending, msg: "not visible in every node yet"},
		{name: "signing, identity pending", creds: &peerv1.Credentials{StrongIdentity: true}, subject: subj,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityPending, msg: "waiting for the remote to require that signer"},
		{name: "enforced", creds: &peerv1.Credentials{StrongIdentity: true, IdentityRequired: true}, subject: subj,
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonStrongIdentityEnforced, msg: "signed as " + subj},
		{name: "disabling", creds: &peerv1.Credentials{IdentityRequired: true}, subject: subj,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityDisabling, msg: "no longer requires"},
		{name: "disabling, still signing", creds: &peerv1.Credentials{}, subject: subj,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityDisabling, msg: "stops signing"},
		{name: "preferred, fallen back", creds: &peerv1.Credentials{StrongIdentityFallback: "the consuming Elasticsearch runs 8.19.2"},
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityUnavailable, msg: "runs without it: the consuming Elasticsearch runs 8.19.2"},
		{name: "preferred, fallen back while still signing", creds: &peerv1.Credentials{StrongIdentityFallback: "x"}, subject: subj,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonStrongIdentityDisabling, msg: "stops signing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, reason, msg, ok := signingCondition(tc.creds, tc.subject, tc.wait)
			if ok != (tc.reason != "") || status != tc.status || reason != tc.reason || !strings.Contains(msg, tc.msg) {
				t.Fatalf("got %v %s %q (present %v), want %v %s with %q", status, reason, msg, ok, tc.status, tc.reason, tc.msg)
			}
		})
	}
}

func TestBundleTrustedGatesPromotion(t *testing.T) {
	now := time.Now()
	a, err := signing.New(signing.Config{Environment: "east", CAValidity: 3 * time.Minute, LeafValidity: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Stage the next CA: the bundle now holds two CAs.
	if _, err := a.Tick(now.Add(2*time.Minute+30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2*time.Minute + 30*time.Second)
	bundle := a.TrustBundle(later)
	certs, _ := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if len(certs) != 2 {
		t.Fatalf("bundle holds %d CAs, want active and next", len(certs))
	}
	active, next := pemutil.Fingerprint(certs[0]), pemutil.Fingerprint(certs[1])
	strong := func(fps ...string) *received {
		return &received{creds: &peerv1.Credentials{StrongIdentity: true, SigningTrustedFingerprints: fps}}
	}
	for _, tc := range []struct {
		name    string
		answers []*received
		want    bool
	}{
		{name: "no link requires strong identity", answers: []*received{{creds: &peerv1.Credentials{}}}, want: true},
		{name: "one remote trusts both", answers: []*received{strong(active, next)}, want: true},
		{name: "one remote trusts only the active CA", answers: []*received{strong(active, next), strong(active)}, want: false},
		{name: "a removed link does not count", answers: []*received{strong(active, next), {removed: true, creds: &peerv1.Credentials{StrongIdentity: true}}}, want: true},
		{name: "a refused link does not count", answers: []*received{strong(active, next), {refusal: &peerv1.Refusal{}}}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := &Importer{answers: map[link.ID]*received{}}
			for i, r := range tc.answers {
				im.answers[link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: fmt.Sprint("a", i)}] = r
			}
			if got := im.bundleTrusted(bundle); got != tc.want {
				t.Fatalf("bundleTrusted = %v, want %v", got, tc.want)
			}
		})
	}
}
