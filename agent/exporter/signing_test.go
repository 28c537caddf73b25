package exporter

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/pemutil"
)

func TestPlanSigning(t *testing.T) {
	const subj = "CN=ccs.apps.east,OU=ecklink-signing"
	for _, tc := range []struct {
		name string
		in   siInput
		want siPlan
	}{
		{name: "disabled, nothing held", in: siInput{subject: subj}, want: siPlan{}},
		{name: "required, new link: the first key carries the identity",
			in: siInput{required: true, subject: subj, noKey: true}, want: siPlan{holdCA: true, identity: true, step: stepTrustPending}},
		{name: "required, live key, CA not trusted yet: no identity (the peer cannot sign)",
			in: siInput{required: true, subject: subj}, want: siPlan{holdCA: true, step: stepTrustPending}},
		{name: "required, trusted, peer not signing: still no identity",
			in: siInput{required: true, subject: subj, trusted: true}, want: siPlan{holdCA: true, step: stepSigningPending}},
		{name: "required, peer signs with another subject: no identity",
			in: siInput{required: true, subject: subj, signingSubject: "CN=x", trusted: true}, want: siPlan{holdCA: true, step: stepSigningPending}},
		{name: "required, peer signs with the subject: identity",
			in: siInput{required: true, subject: subj, signingSubject: subj, trusted: true}, want: siPlan{holdCA: true, identity: true, step: stepEnforced}},
		{name: "required, enforced during a CA rotation (the staged CA not yet trusted)",
			in: siInput{required: true, subject: subj, signingSubject: subj, hasIdentity: true}, want: siPlan{holdCA: true, identity: true, step: stepEnforced}},
		{name: "required, enforced, peer status late (restart): identity kept",
			in: siInput{required: true, subject: subj, hasIdentity: true, trusted: true}, want: siPlan{holdCA: true, identity: true, step: stepSigningPending}},
		{name: "disable: identity goes first, CA stays",
			in: siInput{subject: subj, signingSubject: subj, hasIdentity: true, caHeld: true}, want: siPlan{holdCA: true, step: stepIdentityClear}},
		{name: "disable: identity gone, peer still signs: CA stays",
			in: siInput{subject: subj, signingSubject: subj, caHeld: true}, want: siPlan{holdCA: true, step: stepSigningStop}},
		{name: "disable: peer stopped signing: CA goes",
			in: siInput{subject: subj, caHeld: true}, want: siPlan{step: stepTrustRelease}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planSigning(tc.in); got != tc.want {
				t.Fatalf("planSigning(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// newAuthority is a signing authority of environment env, made at now.
func newAuthority(t *testing.T, env string, now time.Time) *signing.Authority {
	t.Helper()
	a, err := signing.New(signing.Config{Environment: env}, now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTrustedOf(t *testing.T) {
	now := time.Now()
	a := newAuthority(t, "east", now)
	bundle := a.TrustBundle(now)
	fp := pemutil.Fingerprint(a.ActiveCA())
	for _, tc := range []struct {
		name    string
		added   map[string]time.Time
		trusted bool
		wait    time.Duration
	}{
		{name: "never written", added: map[string]time.Time{}},
		{name: "written just now: the kubelet has not synced", added: map[string]time.Time{fp: now}, wait: 2 * time.Second},
		{name: "written one second ago", added: map[string]time.Time{fp: now.Add(-time.Second)}, wait: time.Second},
		{name: "written past the delay", added: map[string]time.Time{fp: now.Add(-2 * time.Second)}, trusted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := trustedOf(bundle, tc.added, now, 2*time.Second)
			if slices.Contains(got.trusted, fp) != tc.trusted || got.wait != tc.wait || !got.held {
				t.Fatalf("trustedOf = %+v, want trusted %v, wait %s", got, tc.trusted, tc.wait)
			}
		})
	}
}

func TestUnionCAs(t *testing.T) {
	now := time.Now()
	a, b := newAuthority(t, "east", now), newAuthority(t, "north", now)
	fa, fb := pemutil.Fingerprint(a.ActiveCA()), pemutil.Fingerprint(b.ActiveCA())
	earlier := now.Add(-time.Hour)
	data := map[string]string{
		"link.east.apps.ccs.logs.pem":  string(a.TrustBundle(now)),
		"link.east.apps.ccs2.logs.pem": string(a.TrustBundle(now)), // same CA, two links
		"link.north.x.y.z.pem":         string(b.TrustBundle(now)),
		"ca.crt":                       "ignored",
	}
	union, added := unionCAs(data, map[string]time.Time{fa: earlier, "gone": earlier}, now)
	fps := func(cs []*x509.Certificate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, pemutil.Fingerprint(c))
		}
		return out
	}
	if got, want := fps(union), slices.Sorted(slices.Values([]string{fa, fb})); !slices.Equal(got, want) {
		t.Fatalf("union %v, want %v", got, want)
	}
	if !added[fa].Equal(earlier) || !added[fb].Equal(now) || len(added) != 2 {
		t.Fatalf("added %v: want %s kept, %s now, nothing else", added, fa, fb)
	}
}
