package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/pairing"
)

func twoEnvs(t *testing.T) map[string]*env {
	return map[string]*env{
		"east": fakeEnv(t, []runtime.Object{identityConfigMap(t, "east", []string{"agent.east.example:9400"}, "agent-east")}),
		"west": fakeEnv(t, []runtime.Object{identityConfigMap(t, "west", nil, "agent-west")}),
	}
}

func TestPairDirect(t *testing.T) {
	ctx := context.Background()
	t.Run("dry run prints both Peers and creates nothing", func(t *testing.T) {
		envs := twoEnvs(t)
		code, out, errOut := runCtl(t, envs, "pair", "--context", "west", "--peer-context", "east", "--dry-run")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"kind: Peer", "name: east", "name: west", "dial: true", "agent.east.example:9400", "BEGIN CERTIFICATE"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run lacks %q:\n%s", want, out)
			}
		}
		if l, _ := envs["west"].crds.Peers().List(ctx, agentNS, metav1.ListOptions{}); len(l) != 0 {
			t.Fatal("dry run created a Peer")
		}
	})
	t.Run("the dialed side needs an endpoint", func(t *testing.T) {
		code, _, errOut := runCtl(t, twoEnvs(t), "pair", "--context", "east", "--peer-context", "west")
		if code != ExitFailed || !strings.Contains(errOut, "environment west advertises no endpoint") || !strings.Contains(errOut, "--dialer=peer") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("creates both Peers, then refuses to pair twice", func(t *testing.T) {
		envs := twoEnvs(t)
		code, out, errOut := runCtl(t, envs, "pair", "--context", "east", "--peer-context", "west", "--dialer", "peer", "--wait=false")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "paired east and west") {
			t.Fatalf("output: %s", out)
		}
		west, err := envs["east"].crds.Peers().Get(ctx, agentNS, "west")
		if err != nil || west.Spec.Dial {
			t.Fatalf("Peer west in east: %+v, %v", west, err)
		}
		east, err := envs["west"].crds.Peers().Get(ctx, agentNS, "east")
		if err != nil || !east.Spec.Dial || east.Spec.Endpoints[0] != "agent.east.example:9400" {
			t.Fatalf("Peer east in west: %+v, %v", east, err)
		}
		code, _, errOut = runCtl(t, envs, "pair", "--context", "east", "--peer-context", "west", "--dialer", "peer")
		if code != ExitFailed || !strings.Contains(errOut, "already has a Peer west") {
			t.Fatalf("second pair: exit %d: %s", code, errOut)
		}
	})
	t.Run("wait times out with progress", func(t *testing.T) {
		code, _, errOut := runCtl(t, twoEnvs(t), "pair", "--context", "west", "--peer-context", "east", "--timeout", "1500ms")
		if code != ExitNotReady || !strings.Contains(errOut, "waiting for the peering stream: Peer east in context west: no status yet") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

func TestPairTokenAndJoin(t *testing.T) {
	ctx := context.Background()
	envs := twoEnvs(t)
	pin := []string{"sha256:" + strings.Repeat("0", 64)}
	old, _ := pairing.NewToken("east", []string{"a:1"}, pin, testNow.Add(-25*time.Hour))
	recent, _ := pairing.NewToken("east", []string{"a:1"}, pin, testNow.Add(-time.Hour))
	unusedWest, _ := pairing.NewToken("east", []string{"a:1"}, pin, testNow.Add(5*time.Minute))
	unusedNorth, _ := pairing.NewToken("east", []string{"a:1"}, pin, testNow.Add(5*time.Minute))
	for tk, peer := range map[*pairing.Token]string{old: "west", recent: "west", unusedWest: "west", unusedNorth: "north"} {
		s := pairing.TokenSecret(agentNS, tk, peer)
		s.CreationTimestamp = metav1.NewTime(testNow.Add(-10 * time.Minute))
		if _, err := envs["east"].kube.CoreV1().Secrets(agentNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCtl(t, envs, "pair", "token", "--context", "east", "--peer", "west", "--ttl", "10m")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	tok, err := pairing.DecodeToken(out)
	if err != nil {
		t.Fatalf("stdout is not a token: %v\n%s", err, out)
	}
	if tok.Environment != "east" || !tok.Expires.Equal(testNow.Add(10*time.Minute)) || tok.Endpoints[0] != "agent.east.example:9400" {
		t.Fatalf("token = %+v", tok)
	}
	if !strings.Contains(errOut, "valid until 2030-01-01T12:10:00Z") || strings.Contains(errOut, string(tok.Secret)) {
		t.Fatalf("stderr: %s", errOut)
	}
	sec, err := envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(tok.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data[pairing.KeySecretHash]) != pairing.HashSecret(tok.Secret) || sec.Labels[pairing.LabelManagedBy] != "ecklink" ||
		string(sec.Data[pairing.KeyPeer]) != "west" {
		t.Fatalf("token Secret = %+v", sec)
	}
	// The API server sets the creation time; the fake does not.
	sec.CreationTimestamp = metav1.NewTime(testNow)
	if _, err := envs["east"].kube.CoreV1().Secrets(agentNS).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The unused token for west is replaced; the one for north is not.
	for id, want := range map[string]bool{unusedWest.ID: true, unusedNorth.ID: false} {
		s, err := envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(id), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := pairing.ReadTokenState(s); st.Revoked != want || want && st.RevokedReason != "superseded by token "+tok.ID {
			t.Fatalf("token %s: %+v, want revoked %v", id, st, want)
		}
	}
	if !strings.Contains(errOut, "revoked unused token "+unusedWest.ID+" for environment west") {
		t.Fatalf("stderr: %s", errOut)
	}
	for k, v := range sec.Data {
		if strings.Contains(string(v), string(tok.Secret)) {
			t.Fatalf("token Secret key %s holds the secret", k)
		}
	}
	if _, err := envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(old.ID), metav1.GetOptions{}); err == nil {
		t.Fatal("the Secret of a token expired more than a day ago was kept")
	}
	if _, err := envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(recent.ID), metav1.GetOptions{}); err != nil {
		t.Fatalf("the Secret of a recently expired token was removed: %v", err)
	}

	t.Run("list", func(t *testing.T) {
		code, out, errOut := runCtl(t, envs, "pair", "token", "list", "--context", "east")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			tok.ID + "  west  open",
			unusedWest.ID + "  west  revoked",
			unusedNorth.ID + "  north  open",
			recent.ID + "  west  expired",
		} {
			if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
				t.Errorf("list lacks %q:\n%s", want, out)
			}
		}
		code, out, _ = runCtl(t, envs, "pair", "token", "list", "--context", "east", "-o", "json")
		var rows []tokenRow
		if err := json.Unmarshal([]byte(out), &rows); code != ExitOK || err != nil || len(rows) != 4 {
			t.Fatalf("json: exit %d, %v: %s", code, err, out)
		}
		if strings.Contains(out, string(tok.Secret)) || strings.Contains(out, "sha256:") {
			t.Fatal("list shows a secret or its hash")
		}
	})
	t.Run("revoke", func(t *testing.T) {
		code, out, errOut := runCtl(t, envs, "pair", "token", "revoke", unusedNorth.ID, "--context", "east")
		if code != ExitOK || !strings.Contains(out, "token "+unusedNorth.ID+" (for environment north) is revoked") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		s, _ := envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(unusedNorth.ID), metav1.GetOptions{})
		if st := pairing.ReadTokenState(s); !st.Revoked || st.RevokedReason != "revoked with agentctl" {
			t.Fatalf("state after revoke: %+v", st)
		}
		code, _, errOut = runCtl(t, envs, "pair", "token", "revoke", "00000000000000ff", "--context", "east")
		if code != ExitFailed || !strings.Contains(errOut, "has no token 00000000000000ff") {
			t.Fatalf("unknown token: exit %d: %s", code, errOut)
		}
		s, _ = envs["east"].kube.CoreV1().Secrets(agentNS).Get(ctx, pairing.TokenSecretName(recent.ID), metav1.GetOptions{})
		s.Data[pairing.KeyUsed], s.Data[pairing.KeyUsedBy] = []byte("true"), []byte("west")
		if _, err := envs["east"].kube.CoreV1().Secrets(agentNS).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		code, _, errOut = runCtl(t, envs, "pair", "token", "revoke", recent.ID, "--context", "east")
		if code != ExitFailed || !strings.Contains(errOut, "was already used by environment west") || !strings.Contains(errOut, "agentctl unpair west") {
			t.Fatalf("used token: exit %d: %s", code, errOut)
		}
	})
	t.Run("a long ttl is noted", func(t *testing.T) {
		code, _, errOut := runCtl(t, envs, "pair", "token", "--context", "east", "--peer", "north", "--ttl", "48h")
		if code != ExitOK || !strings.Contains(errOut, "at most its pairing.tokenMaxTTL after creation (default 1h0m0s)") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
	t.Run("join dry run redacts the token", func(t *testing.T) {
		code, out, errOut := runCtl(t, envs, "pair", "join", strings.TrimSpace(out), "--context", "west", "--dry-run")
		if code != ExitOK || strings.Contains(out, string(tok.Secret)) || !strings.Contains(out, "token: <token>") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
	})
	t.Run("join reports the agent's outcome and deletes the request", func(t *testing.T) {
		stop := fakeJoiner(t, envs["west"], pairing.JoinFailed, "failed to join east: endpoint agent.east.example:9400: pin mismatch: the server's CA is not pinned")
		defer stop()
		code, stdout, errOut := runCtl(t, envs, "pair", "join", strings.TrimSpace(out), "--context", "west")
		if code != ExitFailed || !strings.Contains(errOut, "join failed: failed to join east: endpoint agent.east.example:9400: pin mismatch") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(stdout+errOut, string(tok.Secret)) {
			t.Fatal("join output shows the token secret")
		}
		if l, _ := envs["west"].kube.CoreV1().Secrets(agentNS).List(ctx, metav1.ListOptions{}); len(l.Items) != 0 {
			t.Fatalf("join request left behind: %d Secrets", len(l.Items))
		}
	})
	t.Run("join succeeds", func(t *testing.T) {
		stop := fakeJoiner(t, envs["west"], pairing.JoinPaired, "paired with environment east (agent 0.1.0) through agent.east.example:9400")
		defer stop()
		code, _, errOut := runCtl(t, envs, "pair", "join", "-", "--context", "west", "-o", "json")
		if code != ExitUsage {
			t.Fatalf("empty stdin: exit %d: %s", code, errOut)
		}
		code, stdout, errOut := runCtl(t, envs, "pair", "join", strings.TrimSpace(out), "--context", "west", "--wait=false")
		if code != ExitOK || !strings.Contains(stdout, "west: paired with environment east") {
			t.Fatalf("exit %d: %s%s", code, stdout, errOut)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		old, _ := pairing.NewToken("east", []string{"a:1"}, []string{tok.Pins[0]}, testNow.Add(-time.Minute))
		enc, _ := old.Encode()
		code, _, errOut := runCtl(t, envs, "pair", "join", enc, "--context", "west")
		if code != ExitFailed || !strings.Contains(errOut, "expired at 2030-01-01T11:59:00Z") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// fakeJoiner plays the agent of e: it answers join requests with state and msg.
func fakeJoiner(t *testing.T, e *env, state, msg string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			l, _ := e.kube.CoreV1().Secrets(agentNS).List(ctx, metav1.ListOptions{})
			for _, s := range l.Items {
				if s.Labels[pairing.LabelPairing] == pairing.KindJoinRequest && s.Annotations[pairing.AnnotationJoinState] == "" {
					s.Annotations = map[string]string{pairing.AnnotationJoinState: state, pairing.AnnotationJoinMessage: msg}
					delete(s.Data, pairing.KeyJoinToken)
					_, _ = e.kube.CoreV1().Secrets(agentNS).Update(ctx, &s, metav1.UpdateOptions{})
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() { cancel(); <-done }
}

func TestUnpair(t *testing.T) {
	ctx := context.Background()
	envs := twoEnvs(t)
	if code, _, errOut := runCtl(t, envs, "pair", "--context", "west", "--peer-context", "east", "--wait=false"); code != ExitOK {
		t.Fatal(errOut)
	}
	code, out, errOut := runCtl(t, envs, "unpair", "east", "--context", "west", "--peer-context", "east", "--dry-run")
	if code != ExitOK || strings.Count(out, "kind: Peer") != 2 {
		t.Fatalf("dry run: exit %d: %s%s", code, out, errOut)
	}
	code, _, errOut = runCtl(t, envs, "unpair", "east", "--context", "west", "--peer-context", "west")
	if code != ExitUsage || !strings.Contains(errOut, "holds the agent of environment west, not east") {
		t.Fatalf("wrong peer context: exit %d: %s", code, errOut)
	}
	// The fake API has no agent: Peer west in east stays, so waiting for the peer times out.
	code, _, errOut = runCtl(t, envs, "unpair", "east", "--context", "west", "--peer-context", "east", "--timeout", "1500ms")
	if code != ExitNotReady || !strings.Contains(errOut, "Peer west in context east is still there") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := envs["west"].crds.Peers().Get(ctx, agentNS, "east"); err == nil {
		t.Fatal("Peer east still in west")
	}
	code, _, errOut = runCtl(t, envs, "unpair", "east", "--context", "west")
	if code != ExitFailed || !strings.Contains(errOut, "has no Peer east") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, ExitOK, "agentctl "},
		{[]string{"version", "-o", "xml"}, ExitUsage, "--output \"xml\""},
		{[]string{"nosuch"}, ExitUsage, "unknown command"},
		{[]string{"status", "--nosuch"}, ExitUsage, "unknown flag"},
		{[]string{"unpair"}, ExitUsage, "accepts 1 arg"},
		{[]string{"pair", "--context", "west"}, ExitUsage, "required flag"},
		{[]string{"pair", "token", "--context", "east", "--ttl", "0s"}, ExitUsage, "--ttl 0s"},
		{[]string{"pair", "token", "--context", "east"}, ExitUsage, "--peer: the environment that will join"},
		{[]string{"pair", "token", "--context", "east", "--peer", "East!"}, ExitUsage, "--peer: the environment that will join"},
		{[]string{"pair", "token", "--context", "east", "--peer", "east"}, ExitUsage, "--peer east is the environment of --context itself"},
		{[]string{"pair", "token", "revoke", "xyz", "--context", "east"}, ExitUsage, `token id "xyz": want 16 hex digits`},
		{[]string{"pair", "join", "not-a-token", "--context", "west"}, ExitUsage, "failed to decode token"},
		{[]string{"pair", "--context", "east", "--peer-context", "west", "--dialer", "both"}, ExitUsage, "--dialer \"both\""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCtl(t, twoEnvs(t), tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("exit %d (want %d): %s%s", code, tt.code, out, errOut)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"doctor", "--help"}, {"pair", "join", "--help"}} {
		code, out, _ := runCtl(t, twoEnvs(t), args...)
		if code != ExitOK || !strings.Contains(out, "4  doctor or check found a failing check") {
			t.Fatalf("%v: exit %d:\n%s", args, code, out)
		}
	}
}
