package pairing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
)

// streamSampler reads, every second, the Connected condition of the Peer each side holds of the
// other, and keeps the samples that were not connected.
type streamSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples int
	down    []string
}

func sampleStream(ctx context.Context, a, b *harness.Cluster) *streamSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &streamSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, side := range [][2]*harness.Cluster{{a, b}, {b, a}} {
				ok, detail := peerConnected(ctx, side[0], side[1].Name)
				if ctx.Err() != nil {
					return
				}
				s.mu.Lock()
				s.samples++
				if !ok {
					s.down = append(s.down, fmt.Sprintf("%s: Peer %s in %s:%s", time.Now().Format(time.RFC3339Nano), side[1].Name, side[0].Name, detail))
				}
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *streamSampler) stop() (int, []string) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.down
}

// trustedFingerprints lists the CAs c's agent trusts for peer env: learnt over the stream (its
// trust Secret) or, before it learnt any, the Peer's spec.caBundle.
func trustedFingerprints(ctx context.Context, t *testing.T, c *harness.Cluster, env string) []string {
	t.Helper()
	bundle, err := c.PeerTrust(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	return fingerprints(t, []byte(bundle))
}

func fingerprints(t *testing.T, bundle []byte) []string {
	t.Helper()
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range certs {
		out = append(out, pemutil.Fingerprint(c))
	}
	return out
}

// logLines counts the lines of every agent of the clusters that hold all of parts.
func logLines(clusters []*harness.Cluster, parts ...string) int {
	n := 0
	for _, c := range clusters {
		for line := range strings.SplitSeq(c.Agent.Log(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				n++
			}
		}
	}
	return n
}

// TestRevocation: north pairs with east (north dials) and imports a link from east; a probe
// samples the link and a sampler the Peer stream on both sides every second.
//   - Each agent rotates its identity with agentctl rotate identity --retire-old: neither the
//     link nor the stream ever drops, both sides converge on the new CAs, the old CAs are gone
//     from every trust (the agents' own bundles and the peers' Peers), and a client presenting a
//     leaf of an old CA is refused.
//   - East's leaves live a minute: meanwhile they renew, and north replaces the stream before
//     they expire, without a disconnected sample.
//   - Then a CA removed from a Peer's trust while its stream is live ends the stream within
//     seconds, with a log line naming the reason; restored, the peers reconnect.
func TestRevocation(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	east, north := world.Clusters["east"], world.Clusters["north"]
	both := []*harness.Cluster{east, north}
	// A suite test before this one may have unpaired north and east: its Peers go only once
	// both agents finished the teardown, and a pairing made meanwhile would be torn down too.
	waitFor(ctx, t, 2*time.Minute, "no Peer left of an earlier pairing of north and east", func() (bool, string) {
		_, errN := north.CRDs.Peers().Get(ctx, ns, "east")
		_, errE := east.CRDs.Peers().Get(ctx, ns, "north")
		return apierrors.IsNotFound(errN) && apierrors.IsNotFound(errE), fmt.Sprintf("north: %v; east: %v", errN, errE)
	})
	if code, out, errOut := agentctl(ctx, t, "pair", "--context", "north", "--peer-context", "east"); code != 0 {
		t.Fatalf("pair: exit %d: %s%s", code, out, errOut)
	}
	t.Cleanup(func() {
		agentctl(context.Background(), t, "unpair", "east", "--context", "north", "--peer-context", "east")
	})
	l := setupLink(ctx, t, east, north, "revoke", "east-revoke")
	probe := l.connect(ctx, t)
	stream, sampled := sampleStream(ctx, north, east), time.Now()
	closedBefore := logLines(both, "stream closed")
	replacedBefore := logLines([]*harness.Cluster{east}, "stream replaced by a newer one", "peer=north")
	renewedBefore := east.Agent.LogCount("renewed leaf certificate")

	// Leaves of the CAs about to be rotated out, issued as their agents would.
	oldLeaves := map[string]*tls.Certificate{}
	for _, c := range both {
		leaf, err := c.AgentLeaf(ctx, c.Name)
		if err != nil {
			t.Fatal(err)
		}
		oldLeaves[c.Name] = leaf
	}
	for _, c := range both {
		other := east
		if c == east {
			other = north
		}
		t.Run("rotate the identity of "+c.Name+" with --retire-old", func(t *testing.T) {
			rotateRetireOld(ctx, t, c, other, oldLeaves[c.Name])
		})
	}

	t.Run("leaf renewals replace the stream before the leaves expire", func(t *testing.T) {
		// East's 1-minute leaves renew at 40s and north replaces its stream at 4/5 of their
		// life. A stream kept past its leaf's expiry would be ended (and sampled down): the
		// window covers more than a leaf lifetime after the last rotation.
		waitFor(ctx, t, 3*time.Minute, "east's leaf renewed twice and more than a leaf lifetime sampled", func() (bool, string) {
			renewed := east.Agent.LogCount("renewed leaf certificate") - renewedBefore
			replaced := logLines([]*harness.Cluster{east}, "stream replaced by a newer one", "peer=north") - replacedBefore
			return renewed >= 2 && replaced >= 3 && time.Since(sampled) > 100*time.Second,
				fmt.Sprintf("%d renewals, %d replacements in %s", renewed, replaced, time.Since(sampled).Round(time.Second))
		})
	})

	samples, down := stream.stop()
	t.Logf("stream: %d samples of both Peers", samples)
	for _, d := range down {
		t.Errorf("stream not connected: %s", d)
	}
	if n := logLines(both, "stream closed") - closedBefore; n != 0 {
		t.Errorf("%d streams closed during the rotations and renewals, want 0 (all replaced)", n)
	}
	t.Logf("the stream was replaced %d times without a disconnection", logLines([]*harness.Cluster{east}, "stream replaced by a newer one", "peer=north")-replacedBefore)
	requireNoDisconnects(t, probe.Stop())

	t.Run("a CA removed from a Peer's trust ends its live stream within seconds", func(t *testing.T) {
		removeTrustEndsStream(ctx, t, east, north)
	})
}

// rotateRetireOld rotates c's agent CA with --retire-old and checks that the old CA is gone
// from c's bundle and from the peer's trust, and that a leaf of it is refused by the peer.
func rotateRetireOld(ctx context.Context, t *testing.T, c, peer *harness.Cluster, oldLeaf *tls.Certificate) {
	before, err := pairing.ReadIdentity(ctx, c.Env.Kube, ns)
	if err != nil {
		t.Fatal(err)
	}
	oldCA := pemutil.Fingerprint(before.CAs[0])
	if err := harness.TryClientCertificate(peer.Endpoint, oldLeaf); err != nil {
		t.Fatalf("control: %s refuses a leaf of %s's current CA: %v", peer.Name, c.Name, err)
	}
	start := time.Now()
	code, out, errOut := agentctl(ctx, t, "rotate", "identity", "--context", c.Name, "--retire-old")
	if code != 0 || !strings.Contains(out, "rotated the agent CA of "+c.Name) {
		t.Fatalf("rotate identity: exit %d: %s%s", code, out, errOut)
	}
	t.Logf("%s's agent CA rotated and the old one retired from every peer's trust in %s", c.Name, time.Since(start).Round(100*time.Millisecond))
	after, err := pairing.ReadIdentity(ctx, c.Env.Kube, ns)
	if err != nil {
		t.Fatal(err)
	}
	newCA := pemutil.Fingerprint(after.CAs[0])
	if own := fingerprints(t, after.Bundle); len(own) != 1 || newCA == oldCA {
		t.Fatalf("%s's bundle after the rotation = %v, want only a new CA (old %s)", c.Name, own, oldCA[:16])
	}
	if got := trustedFingerprints(ctx, t, peer, c.Name); len(got) != 1 || got[0] != newCA {
		t.Fatalf("%s trusts %v for %s, want only the new CA %s", peer.Name, got, c.Name, newCA[:16])
	}
	sec, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, identity.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data[identity.KeyPreviousCert]) != 0 {
		t.Fatalf("%s's Secret still holds the previous CA", c.Name)
	}
	err = harness.TryClientCertificate(peer.Endpoint, oldLeaf)
	if !errors.Is(err, harness.ErrRefused) {
		t.Fatalf("%s accepts a leaf of %s's retired CA: %v", peer.Name, c.Name, err)
	}
	t.Logf("%s refuses a leaf of %s's retired CA: %v", peer.Name, c.Name, err)
	fresh, err := c.AgentLeaf(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.TryClientCertificate(peer.Endpoint, fresh); err != nil {
		t.Fatalf("control: %s refuses a leaf of %s's new CA: %v", peer.Name, c.Name, err)
	}
	cm, err := c.Env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, st := identity.ReadRotation(cm); st.Phase != identity.RotationDone || st.OldCA != oldCA || st.NewCA != newCA {
		t.Fatalf("rotation status = %+v", st)
	}
}

// removeTrustEndsStream replaces the CA east trusts for north by a stranger's while north's
// stream is live: east ends it at once and refuses north's reconnections; with the CA restored,
// north reconnects.
func removeTrustEndsStream(ctx context.Context, t *testing.T, east, north *harness.Cluster) {
	ca, _, err := harness.NewAgentCA("north")
	if err != nil {
		t.Fatal(err)
	}
	stranger := string(pemutil.EncodeBundle([]*x509.Certificate{ca}))
	setTrust := func(bundle string) (old string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := east.CRDs.Peers().Get(ctx, ns, "north")
			if err != nil {
				return err
			}
			old = p.Spec.CABundle
			p.Spec.CABundle = bundle
			_, err = east.CRDs.Peers().Update(ctx, p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return old
	}
	const ended = "stream ended: the peer's certificate is no longer valid"
	before := logLines([]*harness.Cluster{east}, ended, "peer=north")
	removed := time.Now()
	saved := setTrust(stranger)
	took := waitFor(ctx, t, 30*time.Second, "east ended the stream with north", func() (bool, string) {
		return logLines([]*harness.Cluster{east}, ended, "peer=north") > before, "no such log line yet"
	})
	t.Logf("east ended north's live stream %s after the CA was removed from Peer north", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the stream ended %s after the trust change, want within seconds", took)
	}
	for line := range strings.SplitSeq(east.Agent.Log(), "\n") {
		if strings.Contains(line, ended) && strings.Contains(line, "peer=north") {
			t.Logf("east's log: %s", line[strings.Index(line, "["):])
		}
	}
	waitFor(ctx, t, 30*time.Second, "east's Peer north not connected", func() (bool, string) {
		p, err := east.CRDs.Peers().Get(ctx, ns, "north")
		if err != nil {
			return false, err.Error()
		}
		return harness.HasCondition(p, v1alpha1.ConditionConnected, metav1.ConditionFalse), harness.DescribeConditions(p)
	})
	current, err := north.AgentLeaf(ctx, "north")
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.TryClientCertificate(east.Endpoint, current); !errors.Is(err, harness.ErrRefused) {
		t.Fatalf("east accepts north's current leaf after its CA left the trust: %v", err)
	}
	setTrust(saved)
	restored := time.Now()
	waitFor(ctx, t, 90*time.Second, "north reconnected once its CA is trusted again", func() (bool, string) {
		return heartbeatSince(ctx, east, "north", restored)
	})
	t.Logf("north reconnected %s after its CA was trusted again (the dialer's backoff); %s in all", time.Since(restored).Round(100*time.Millisecond), time.Since(removed).Round(100*time.Millisecond))
}
