package pairing

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// token creates a token in env's agent for peer with agentctl and returns it encoded and decoded.
func token(ctx context.Context, t *testing.T, env, peer string, args ...string) (string, *pairing.Token) {
	t.Helper()
	code, out, errOut := agentctl(ctx, t, append([]string{"pair", "token", "--context", env, "--peer", peer}, args...)...)
	if code != 0 {
		t.Fatalf("pair token: exit %d: %s", code, errOut)
	}
	enc := strings.TrimSpace(out)
	tok, err := pairing.DecodeToken(enc)
	if err != nil {
		t.Fatal(err)
	}
	return enc, tok
}

func tokenState(ctx context.Context, t *testing.T, c *harness.Cluster, id string) pairing.TokenState {
	t.Helper()
	s, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, pairing.TokenSecretName(id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Data {
		if k != pairing.KeySecretHash && strings.Contains(string(v), "sha256:") {
			t.Fatalf("token Secret key %s holds a hash", k)
		}
	}
	return pairing.ReadTokenState(s)
}

// TestTokenPairing: west, which no peer can reach, joins east with a token; an API-key link
// then syncs over that pairing, and west's agent CA rotates and its leaves renew while a probe
// samples the link, without a disconnected sample or a manual step.
func TestTokenPairing(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	east, west := world.Clusters["east"], world.Clusters["west"]

	enc, tok := token(ctx, t, "east", "west", "--ttl", "5m")
	if len(tok.Endpoints) != 1 || tok.Endpoints[0] != east.Endpoint || tok.Environment != "east" {
		t.Fatalf("token = %+v", tok)
	}
	start := time.Now()
	code, out, errOut := agentctl(ctx, t, "pair", "join", enc, "--context", "west")
	if code != 0 || !strings.Contains(out, "paired with environment east") || !strings.Contains(out, "the stream is up") {
		t.Fatalf("pair join: exit %d: %s%s", code, out, errOut)
	}
	t.Logf("token pairing with the stream up in %s", time.Since(start).Round(100*time.Millisecond))

	westInEast, err := east.CRDs.Peers().Get(ctx, ns, "west")
	if err != nil {
		t.Fatal(err)
	}
	if westInEast.Spec.Dial || len(westInEast.Spec.Endpoints) != 0 {
		t.Fatalf("east must wait for west to dial: %+v", westInEast.Spec)
	}
	eastInWest, err := west.CRDs.Peers().Get(ctx, ns, "east")
	if err != nil {
		t.Fatal(err)
	}
	if !eastInWest.Spec.Dial || eastInWest.Spec.Endpoints[0] != east.Endpoint {
		t.Fatalf("west must dial east: %+v", eastInWest.Spec)
	}
	waitFor(ctx, t, 30*time.Second, "east sees west connected", func() (bool, string) { return peerConnected(ctx, east, "west") })
	if st := tokenState(ctx, t, east, tok.ID); !st.Used || st.UsedBy != "west" {
		t.Fatalf("token state = %+v", st)
	}
	if l, _ := west.Env.Kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: pairing.LabelPairing + "=" + pairing.KindJoinRequest}); len(l.Items) != 0 {
		t.Fatalf("%d join requests left in west", len(l.Items))
	}
	requireHidden(ctx, t, nil, string(tok.Secret))

	var l *link
	t.Run("an API-key link syncs over the token pairing", func(t *testing.T) {
		l = setupLink(ctx, t, east, west, "tokenlink", "east-logs")
		l.connect(ctx, t)
		requireHidden(ctx, t, nil, apiKeys(ctx, t, west, l.ns, "ccs")...)
	})
	t.Run("agent leaf renewal and CA rotation during sync", func(t *testing.T) {
		if l == nil || t.Failed() {
			t.Fatal("needs the link of the previous subtest, which failed")
		}
		rotationDuringSync(ctx, t, l)
	})
}

// rotationDuringSync watches west's agent CA rotate (staged, trusted by east, promoted,
// previous retired) while a probe samples the link every second.
func rotationDuringSync(ctx context.Context, t *testing.T, l *link) {
	east, west := l.remote, l.local
	probe := l.connect(ctx, t)
	renewedWest, renewedEast := west.Agent.LogCount("renewed leaf certificate"), east.Agent.LogCount("renewed leaf certificate")
	identityOf := func() (string, []*x509.Certificate) {
		id, err := pairing.ReadIdentity(ctx, west.Env.Kube, ns)
		if err != nil {
			t.Fatal(err)
		}
		return id.Pin, id.CAs
	}
	trustedByEast := func() []*x509.Certificate {
		bundle, err := east.PeerTrust(ctx, "west")
		if err != nil {
			t.Fatal(err)
		}
		certs, _ := pemutil.ParseCertificates([]byte(bundle), pemutil.Limits{})
		return certs
	}
	holds := func(set []*x509.Certificate, pin string) bool {
		for _, c := range set {
			if pemutil.SPKIPin(c) == pin {
				return true
			}
		}
		return false
	}
	firstPin, _ := identityOf()
	// First sightings of each CA (by pin) in west's bundle and in east's trust of west.
	seenWest, seenEast := map[string]time.Time{}, map[string]time.Time{}
	var newPin string
	var promoted, retired, retiredAtEast time.Time
	start := time.Now()
	waitFor(ctx, t, 6*time.Minute, "west's agent CA rotated and its old CA retired on both sides", func() (bool, string) {
		pin, cas := identityOf()
		atEast := trustedByEast() // read after west's identity: trust must never lag behind use
		now := time.Now()
		for _, c := range cas {
			if p := pemutil.SPKIPin(c); seenWest[p].IsZero() {
				seenWest[p] = now
			}
		}
		for _, c := range atEast {
			if p := pemutil.SPKIPin(c); seenEast[p].IsZero() {
				seenEast[p] = now
			}
		}
		if !holds(atEast, pin) {
			t.Fatalf("west signs with CA %s that east does not trust", pin[:20])
		}
		if pin != firstPin && promoted.IsZero() {
			newPin, promoted = pin, now
		}
		if !promoted.IsZero() && retired.IsZero() && !holds(cas, firstPin) {
			retired = now
		}
		if !retired.IsZero() && retiredAtEast.IsZero() && !holds(atEast, firstPin) {
			retiredAtEast = now
		}
		return !retiredAtEast.IsZero(), fmt.Sprintf("pin %s, %d CA(s) in west, %d trusted by east", pin[:20], len(cas), len(atEast))
	})
	staged, trusted := seenWest[newPin], seenEast[newPin]
	if trusted.After(promoted) {
		t.Errorf("east trusted the new CA at %s, after west promoted it at %s", trusted, promoted)
	}
	t.Logf("rotation: the new CA was staged %s after the probe started (0s: already staged), trusted by east %s later, promoted %s after staging; "+
		"the old CA was retired %s after the promotion and dropped by east %s after that",
		staged.Sub(start).Round(time.Second), trusted.Sub(staged).Round(10*time.Millisecond), promoted.Sub(staged).Round(10*time.Millisecond),
		retired.Sub(promoted).Round(time.Second), retiredAtEast.Sub(retired).Round(10*time.Millisecond))
	if west.Agent.LogCount("every peer trusts the next agent CA: promoting it") == 0 {
		t.Error("west promoted its CA without the peers' acknowledgement")
	}
	rw, re := west.Agent.LogCount("renewed leaf certificate")-renewedWest, east.Agent.LogCount("renewed leaf certificate")-renewedEast
	t.Logf("leaf renewals during the test: west %d, east %d", rw, re)
	if rw == 0 || re == 0 {
		t.Errorf("leaves did not renew during the test (west %d, east %d)", rw, re)
	}
	r := probe.Stop()
	requireNoDisconnects(t, r)
	if ok, detail := peerConnected(ctx, west, "east"); !ok {
		t.Fatalf("west lost the stream: %s", detail)
	}

	// A new connection uses the new CA: west's agent restarts and dials east with a leaf of it.
	west.Agent.Kill()
	restarted := time.Now()
	if err := west.Agent.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 60*time.Second, "west reconnected with its new CA", func() (bool, string) { return heartbeatSince(ctx, east, "west", restarted) })
	t.Logf("west reconnected %s after a restart, with a leaf of its new CA", time.Since(restarted).Round(100*time.Millisecond))
}

var pinsInError = regexp.MustCompile(`server CA (sha256:[0-9a-f]{64}), token pins (sha256:[0-9a-f]{64})`)

// TestTokenRefusals: a token works once, an expired token is refused, a token whose pin does
// not match the agent answering at its endpoint is refused before the secret is sent, and
// certificates of unpaired CAs, or of a peer after unpair, are refused.
func TestTokenRefusals(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	east, north := world.Clusters["east"], world.Clusters["north"]
	var secrets []string
	var extra []*harness.Agent

	t.Run("a token works once", func(t *testing.T) {
		enc, tok := token(ctx, t, "east", "north")
		secrets = append(secrets, string(tok.Secret))
		if code, out, errOut := agentctl(ctx, t, "pair", "join", enc, "--context", "north"); code != 0 {
			t.Fatalf("first use: exit %d: %s%s", code, out, errOut)
		}
		leaf, err := north.AgentLeaf(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		if err := harness.TryClientCertificate(east.Endpoint, leaf); err != nil {
			t.Fatalf("east refuses north's certificate while paired: %v", err)
		}
		code, out, errOut := agentctl(ctx, t, "unpair", "east", "--context", "north", "--peer-context", "east")
		if code != 0 || !strings.Contains(out, "both sides removed their Peer") {
			t.Fatalf("unpair: exit %d: %s%s", code, out, errOut)
		}
		if err := harness.TryClientCertificate(east.Endpoint, leaf); !errors.Is(err, harness.ErrRefused) {
			t.Fatalf("east still accepts north's certificate after unpair: %v", err)
		}
		t.Log("after unpair, east refuses north's certificate in the handshake")
		// No token is open in east any more: the second use is refused at once, with the answer
		// every attempt gets that did not prove an open token's secret.
		code, _, errOut = agentctl(ctx, t, "pair", "join", enc, "--context", "north")
		if code != 1 || !strings.Contains(errOut, "no open pairing token on this agent matches") {
			t.Fatalf("second use: exit %d: %s", code, errOut)
		}
		if st := tokenState(ctx, t, east, tok.ID); !st.Used || st.UsedBy != "north" {
			t.Fatalf("token state = %+v", st)
		}
	})

	t.Run("an expired token is refused", func(t *testing.T) {
		enc, tok := token(ctx, t, "east", "north", "--ttl", "2s")
		secrets = append(secrets, string(tok.Secret))
		time.Sleep(time.Until(tok.Expires) + time.Second)
		code, _, errOut := agentctl(ctx, t, "pair", "join", enc, "--context", "north")
		if code != 1 || !strings.Contains(errOut, "expired at") {
			t.Fatalf("agentctl: exit %d: %s", code, errOut)
		}
		// The agent refuses it too, when a join request bypasses agentctl's own check.
		req := pairing.JoinRequest(ns, "ecklink-join-expired", enc)
		if _, err := north.Env.Kube.CoreV1().Secrets(ns).Create(ctx, req, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, 30*time.Second, "the agent refused the expired token", func() (bool, string) {
			s, err := north.Env.Kube.CoreV1().Secrets(ns).Get(ctx, req.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			st, msg := s.Annotations[pairing.AnnotationJoinState], s.Annotations[pairing.AnnotationJoinMessage]
			return st == pairing.JoinFailed && strings.Contains(msg, "expired at"), st + ": " + msg
		})
		_ = north.Env.Kube.CoreV1().Secrets(ns).Delete(ctx, req.Name, metav1.DeleteOptions{})
		if st := tokenState(ctx, t, east, tok.ID); st.Used {
			t.Fatal("an expired token was consumed")
		}
	})

	t.Run("a pin mismatch is refused before the secret is sent", func(t *testing.T) {
		// A second agent for environment east, with its own CA, answers at another address.
		if err := east.Env.EnsureNamespace(ctx, "impostor"); err != nil {
			t.Fatal(err)
		}
		addr := testbed.LoopbackIP() + ":9400"
		impostor := east.ExtraAgent("impostor", "--environment", "east", "--namespace", "impostor", "--watch-namespace", "impostor",
			"--listen-address", addr, "--advertise-endpoint", addr)
		extra = append(extra, impostor)
		if err := impostor.Start(); err != nil {
			t.Fatal(err)
		}
		defer impostor.Stop()
		waitFor(ctx, t, 30*time.Second, "the second agent serves", func() (bool, string) {
			if _, err := pairing.ReadIdentity(ctx, east.Env.Kube, "impostor"); err != nil {
				return false, err.Error()
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
			return true, ""
		})
		// A genuine token of east, whose endpoint leads to the other agent.
		enc, tok := token(ctx, t, "east", "north", "--endpoint", addr)
		secrets = append(secrets, string(tok.Secret))
		code, _, errOut := agentctl(ctx, t, "pair", "join", enc, "--context", "north")
		if code != 1 || !strings.Contains(errOut, "pin mismatch") || !strings.Contains(errOut, "is not an agent CA pinned in the token") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		// Whole pins, so that the two differ visibly.
		m := pinsInError.FindStringSubmatch(errOut)
		if m == nil || m[1] == m[2] || m[2] != tok.Pins[0] {
			t.Fatalf("the error does not show the server's pin and the token's whole and different: %s", errOut)
		}
		t.Logf("server CA %s, token pin %s", m[1], m[2])
		// The other agent never received a Pair call: it logs every one it answers.
		log := impostor.Log()
		if strings.Contains(log, tok.ID) || strings.Contains(log, "pairing refused") || strings.Contains(log, "paired by token") || strings.Contains(log, string(tok.Secret)) {
			t.Fatalf("the second agent received the pairing request:\n%s", log)
		}
		if st := tokenState(ctx, t, east, tok.ID); st.Used {
			t.Fatal("the token was consumed")
		}
		if _, err := north.CRDs.Peers().Get(ctx, ns, "east"); err == nil {
			t.Fatal("north has a Peer east after a refused join")
		}
	})

	t.Run("a client certificate from an unpaired CA is refused", func(t *testing.T) {
		// It claims to be west, which is paired with east: only west's own CA may vouch for it.
		ca, key, err := harness.NewAgentCA("west")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := harness.IssueLeaf(ca, key, "west")
		if err != nil {
			t.Fatal(err)
		}
		if err := harness.TryClientCertificate(east.Endpoint, leaf); !errors.Is(err, harness.ErrRefused) {
			t.Fatalf("east accepted a certificate of an unpaired CA: %v", err)
		}
		t.Logf("refused: %v", harness.TryClientCertificate(east.Endpoint, leaf))
		if _, err := east.CRDs.Peers().Get(ctx, ns, "west"); err == nil {
			genuine, err := world.Clusters["west"].AgentLeaf(ctx, "west")
			if err != nil {
				t.Fatal(err)
			}
			if err := harness.TryClientCertificate(east.Endpoint, genuine); err != nil {
				t.Fatalf("control: east refuses west's genuine certificate: %v", err)
			}
		}
	})
	requireHidden(ctx, t, extra, secrets...)

}
