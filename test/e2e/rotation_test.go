package e2e

import (
	"context"
	"crypto"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestCARotations: the real ECK operator rotates west's transport CA at least three times (3m
// validity) while a probe samples east's _remote/info every second: after the first connection
// no sample is disconnected, including after each old CA expired.
func TestCARotations(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "rotate", "west-rot", nil, nil)
	probe := l.connect(ctx, t)

	first, err := l.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := []testbed.CAInfo{first}
	for len(seen) < 4 {
		ca, err := l.transportCA(ctx)
		if err == nil && ca.Fingerprint != seen[len(seen)-1].Fingerprint {
			seen = append(seen, ca)
			t.Logf("ECK rotated the CA (%d): %s, valid until %s", len(seen)-1, ca.Fingerprint[:16], ca.NotAfter.Format(time.TimeOnly))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("only %d rotations: %v", len(seen)-1, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	// Wait until every CA replaced so far has expired, then a little more.
	lastOld := seen[len(seen)-2].NotAfter
	t.Logf("waiting until the replaced CAs expired (%s)", lastOld.Format(time.TimeOnly))
	select {
	case <-time.After(time.Until(lastOld) + 10*time.Second):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	// ECK may have renewed the CA again just now: trust follows within milliseconds, yet a read
	// of the current CA and of east's ConfigMap a moment apart can fall on either side of it.
	waitFor(ctx, t, 15*time.Second, "east's CA ConfigMap holds west's current CA", func() (bool, string) {
		current, err := l.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		return l.localTrusts(ctx, current), "east does not trust " + current.Fingerprint[:16]
	})
	r := probe.Stop()
	requireNoDisconnects(t, r)
	if r.Connected < 120 {
		t.Errorf("only %d connected samples", r.Connected)
	}
}

// TestFreshKeyCA: deleting the CA Secret makes ECK issue a CA with a new key, which old copies
// cannot verify; the link is connected again within 30s.
func TestFreshKeyCA(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "freshkey", "west-fresh", nil, nil)
	probe := l.connect(ctx, t)
	before, err := l.transportCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := l.remote.Env.Kube.CoreV1().Secrets(l.ns).Delete(ctx, "logs-es-transport-ca-internal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 60*time.Second, "ECK issued a CA with a new key", func() (bool, string) {
		ca, err := l.transportCA(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !ca.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(before.Cert.PublicKey), "same key"
	})
	fresh, _ := l.transportCA(ctx)
	t.Logf("new CA key %s after the deletion", time.Since(deleted).Round(100*time.Millisecond))
	// The stale copy fails as soon as esim serves a certificate from the new CA; the link is back
	// once east trusts the new CA.
	waitFor(ctx, t, time.Until(deleted.Add(30*time.Second)), "connected again with the fresh-key CA", func() (bool, string) {
		return l.localTrusts(ctx, fresh) && probe.Connected(), "not trusted or not connected"
	})
	// By now esim serves a certificate of the new CA: the link must hold.
	time.Sleep(10 * time.Second)
	if !probe.Connected() {
		t.Error("not connected 10s after east trusted the new CA")
	}
	r := probe.Stop()
	recovered := time.Duration(0)
	if n := len(r.Disconnected); n > 0 {
		recovered = r.Disconnected[n-1].At.Sub(deleted) + time.Second
	}
	t.Logf("%d disconnected samples after the CA Secret was deleted; connected again %s after it", len(r.Disconnected), recovered.Round(100*time.Millisecond))
	if recovered > 30*time.Second {
		t.Errorf("recovery took %s, want at most 30s", recovered)
	}
}

// localTrusts reports whether the local CA ConfigMap's bundle holds ca.
func (l *link) localTrusts(ctx context.Context, ca testbed.CAInfo) bool {
	cm, err := l.localConfigMap(ctx)
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
	if err != nil {
		return false
	}
	for _, c := range certs {
		if pemutil.Fingerprint(c) == ca.Fingerprint {
			return true
		}
	}
	return false
}
