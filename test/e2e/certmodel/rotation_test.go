package certmodel

import (
	"context"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/testbed"
)

// rotating follows one side's transport CA and the peer's copy of it.
type rotating struct {
	name string
	// own reads the side's current CA; trusted reads the peer's transport trust ConfigMap.
	own     func() (testbed.CAInfo, error)
	trusted func() ([]string, error)
	seen    []testbed.CAInfo
	// since is when the current CA was first seen; propagated says the peer trusts it.
	since      time.Time
	propagated bool
	lags       []time.Duration
}

func (s *rotating) rotations() int             { return len(s.seen) - 1 }
func (s *rotating) current() testbed.CAInfo    { return s.seen[len(s.seen)-1] }
func (s *rotating) replaced() []testbed.CAInfo { return s.seen[:len(s.seen)-1] }
func (s *rotating) done(rotations int) bool    { return s.rotations() >= rotations && s.propagated }
func (s *rotating) observe(t *testing.T) {
	t.Helper()
	ca, err := s.own()
	if err == nil && ca.Fingerprint != s.current().Fingerprint {
		s.seen, s.since, s.propagated = append(s.seen, ca), time.Now(), false
		t.Logf("ECK rotated %s's transport CA (%d): %s, valid until %s", s.name, s.rotations(), ca.Fingerprint[:12], ca.NotAfter.Format(time.TimeOnly))
	}
	if !s.propagated {
		if fps, err := s.trusted(); err == nil && contains(fps, s.current().Fingerprint) {
			s.propagated = true
			s.lags = append(s.lags, time.Since(s.since).Round(10*time.Millisecond))
		}
	}
}

// TestCertificateLinkSurvivesRotations: a certificate-model link between an 8.13 cluster (no
// API keys) and its consumer connects with no manual step; then the real ECK operators rotate
// both transport CAs at least three times each while a probe samples east's _remote/info every
// second. After the first connection no sample is disconnected, including after the replaced
// CAs expired (from then on a stale copy would fail). West joins the user's CA ConfigMap, east
// gets the agent's own; at the end each side trusts the peer's current CA and no expired one,
// west's user CA stays, and it never reached east.
func TestCertificateLinkSurvivesRotations(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	l := setup(ctx, t, "rotate", "west-cert", options{version: "8.13.4", remoteUserCAs: true})
	probe := l.connect(ctx, t)
	t.Logf("connected %s after the RemoteCluster was created", time.Since(l.created).Round(100*time.Millisecond))

	sides := []*rotating{
		{name: "west", own: func() (testbed.CAInfo, error) { return l.transportCA(ctx, true, "logs") },
			trusted: func() ([]string, error) { _, fps, err := l.localTrust(ctx); return fps, err }},
		{name: "east", own: func() (testbed.CAInfo, error) { return l.transportCA(ctx, false, "ccs") },
			trusted: func() ([]string, error) { _, fps, err := l.remoteTrust(ctx); return fps, err }},
	}
	for _, s := range sides {
		ca, err := s.own()
		if err != nil {
			t.Fatal(err)
		}
		s.seen, s.since, s.propagated = []testbed.CAInfo{ca}, time.Now(), true
	}
	for !sides[0].done(3) || !sides[1].done(3) {
		for _, s := range sides {
			s.observe(t)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rotations: west %d, east %d: %v", sides[0].rotations(), sides[1].rotations(), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	// Past the expiry of every replaced CA: a stale copy would fail from there on.
	var lastExpiry time.Time
	for _, s := range sides {
		for _, ca := range s.replaced() {
			if ca.NotAfter.After(lastExpiry) {
				lastExpiry = ca.NotAfter
			}
		}
	}
	t.Logf("waiting until the replaced CAs expired (%s)", lastExpiry.Format(time.TimeOnly))
	deadline := time.After(time.Until(lastExpiry) + 15*time.Second)
wait:
	for {
		for _, s := range sides {
			s.observe(t) // rotations go on meanwhile
		}
		select {
		case <-deadline:
			break wait
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	r := probe.Stop()
	requireNoDisconnects(t, r)
	if r.Connected < 180 {
		t.Errorf("only %d connected samples", r.Connected)
	}
	for _, s := range sides {
		t.Logf("%s: %d rotations; the peer's ConfigMap held each new CA after %v", s.name, s.rotations(), s.lags)
	}

	// Each side trusts the peer's current CA and nothing expired; west's user CA stays there and
	// never reached east (only the peer's own CA crosses).
	waitFor(ctx, t, 20*time.Second, "each side trusts the peer's current CA and no expired one", func() (bool, string) {
		westCA, err1 := ownCA(ctx, l.remote, l.ns, "logs")
		eastCA, err2 := ownCA(ctx, l.local, l.ns, "ccs")
		remoteCM, remoteFPs, err3 := l.remoteTrust(ctx)
		localCM, localFPs, err4 := l.localTrust(ctx)
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				return false, err.Error()
			}
		}
		switch {
		case !contains(remoteFPs, eastCA) || !contains(remoteFPs, l.remoteUserCA):
			return false, "west's user-cas " + short(remoteFPs) + " lacks east's CA or the user's"
		case !contains(localFPs, westCA):
			return false, "east's trust " + short(localFPs) + " lacks west's CA"
		case contains(localFPs, l.remoteUserCA):
			return false, "west's user CA reached east's transport trust"
		case expired(remoteCM.Data["ca.crt"]) > 0 || expired(localCM.Data["ca.crt"]) > 0:
			return false, "an expired CA is still in a trust ConfigMap"
		}
		return true, ""
	})
}

// transportCA reads the first certificate of a side's <es>-es-transport-certs-public.
func (l *certLink) transportCA(ctx context.Context, remote bool, es string) (testbed.CAInfo, error) {
	c := l.local
	if remote {
		c = l.remote
	}
	s, err := c.Env.WaitForSecret(ctx, l.ns, es+"-es-transport-certs-public", nil)
	if err != nil {
		return testbed.CAInfo{}, err
	}
	return testbed.FirstCertificate(s.Data["ca.crt"])
}

// expired counts the expired certificates of a bundle.
func expired(bundle string) int {
	certs, _ := pemutil.ParseCertificates([]byte(bundle), pemutil.Limits{})
	n := 0
	for _, c := range certs {
		if time.Now().After(c.NotAfter) {
			n++
		}
	}
	return n
}
