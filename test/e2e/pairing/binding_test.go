package pairing

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/pairing"
)

// TestTokenBinding: a token works only for the environment it names; a new token for the same
// environment replaces the unused one; a revoked token, and a token of agentctl 0.1.0 (bound to
// nobody), are refused; the agent itself caps a token's life (north runs with a 30s cap); and
// agentctl pair token list says what each token is. A token for "south", which never joins,
// keeps east's pairing open meanwhile: only then does the agent say why it refuses a token
// whose secret the caller holds.
func TestTokenBinding(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	east := world.Clusters["east"]
	var secrets []string
	join := func(t *testing.T, enc, from string) (int, string) {
		t.Helper()
		code, _, errOut := agentctl(ctx, t, "pair", "join", enc, "--context", from, "--wait=false")
		return code, errOut
	}
	refused := func(t *testing.T, enc, from, want string) {
		t.Helper()
		code, errOut := join(t, enc, from)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Fatalf("join from %s: exit %d, want a refusal saying %q: %s", from, code, want, errOut)
		}
	}
	refusalLines := east.Agent.LogCount("pairing refused: reason=")
	_, keep := token(ctx, t, "east", "south")
	secrets = append(secrets, string(keep.Secret))

	encWest, forWest := token(ctx, t, "east", "west")
	secrets = append(secrets, string(forWest.Secret))
	t.Run("a token bound to another environment is refused", func(t *testing.T) {
		refused(t, encWest, "north", `is for environment "west", not "north"`)
		if st := tokenState(ctx, t, east, forWest.ID); st.Used {
			t.Fatal("the token was consumed by the wrong environment")
		}
	})

	enc1, first := token(ctx, t, "east", "north")
	enc2, second := token(ctx, t, "east", "north")
	secrets = append(secrets, string(first.Secret), string(second.Secret))
	t.Run("a new token for the same environment replaces the unused one", func(t *testing.T) {
		refused(t, enc1, "north", "(superseded by token "+second.ID+")")
	})
	t.Run("a revoked token is refused", func(t *testing.T) {
		code, out, errOut := agentctl(ctx, t, "pair", "token", "revoke", second.ID, "--context", "east")
		if code != 0 || !strings.Contains(out, "is revoked") {
			t.Fatalf("revoke: exit %d: %s%s", code, out, errOut)
		}
		refused(t, enc2, "north", "was revoked at")
	})
	t.Run("a token of agentctl 0.1.0, bound to nobody, is refused", func(t *testing.T) {
		id, err := pairing.ReadIdentity(ctx, east.Env.Kube, ns)
		if err != nil {
			t.Fatal(err)
		}
		old, err := pairing.NewToken("east", id.Endpoints, id.Pins(), time.Now().Add(10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, string(old.Secret))
		s := pairing.TokenSecret(ns, old, "")
		delete(s.Data, pairing.KeyPeer) // as agentctl 0.1.0 wrote it
		if _, err := east.Env.Kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		enc, err := old.Encode()
		if err != nil {
			t.Fatal(err)
		}
		refused(t, enc, "north", "is bound to no environment (made by agentctl 0.1.0?)")
	})
	t.Run("pair token list says what each token is", func(t *testing.T) {
		code, out, errOut := agentctl(ctx, t, "pair", "token", "list", "--context", "east")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		rows := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				rows[f[0]] = f[1] + " " + f[2]
			}
		}
		for id, want := range map[string]string{keep.ID: "south open", forWest.ID: "west open", first.ID: "north revoked", second.ID: "north revoked"} {
			if rows[id] != want {
				t.Errorf("token %s listed as %q, want %q", id, rows[id], want)
			}
		}
	})
	t.Run("the environment a token names pairs with it", func(t *testing.T) {
		enc, tok := token(ctx, t, "east", "north")
		secrets = append(secrets, string(tok.Secret))
		if code, errOut := join(t, enc, "north"); code != 0 {
			t.Fatalf("join: exit %d: %s", code, errOut)
		}
		if st := tokenState(ctx, t, east, tok.ID); !st.Used || st.UsedBy != "north" || st.Peer != "north" {
			t.Fatalf("token state = %+v", st)
		}
		code, out, errOut := agentctl(ctx, t, "unpair", "east", "--context", "north", "--peer-context", "east")
		if code != 0 {
			t.Fatalf("unpair: exit %d: %s%s", code, out, errOut)
		}
	})
	t.Run("without an open token the agent refuses at once", func(t *testing.T) {
		for _, id := range []string{keep.ID, forWest.ID} {
			if code, _, errOut := agentctl(ctx, t, "pair", "token", "revoke", id, "--context", "east"); code != 0 {
				t.Fatalf("revoke %s: %s", id, errOut)
			}
		}
		refused(t, encWest, "west", "no open pairing token on this agent matches")
	})
	t.Run("the agent caps a token's life", func(t *testing.T) {
		// north redeems tokens for at most 30s after their creation, whatever they ask for.
		enc, capped := token(ctx, t, "north", "east", "--ttl", "10m")
		secrets = append(secrets, string(capped.Secret))
		time.Sleep(31 * time.Second)
		_, keepNorth := token(ctx, t, "north", "south") // keeps north's pairing open, so it says why
		secrets = append(secrets, string(keepNorth.Secret))
		refused(t, enc, "east", "this agent accepts a token for at most 30s after its creation")
		if code, _, errOut := agentctl(ctx, t, "pair", "token", "revoke", keepNorth.ID, "--context", "north"); code != 0 {
			t.Fatalf("revoke: %s", errOut)
		}
	})
	// Six refusals of five reasons: at most one line per reason and interval.
	if n := east.Agent.LogCount("pairing refused: reason=") - refusalLines; n > 5 {
		t.Errorf("east logged %d refusal lines for six refusals of five reasons", n)
	}
	requireHidden(ctx, t, nil, secrets...)
}
