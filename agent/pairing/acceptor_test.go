package pairing

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// refusalCounts counts the refusals the acceptor reports, by reason.
type refusalCounts struct{ testenv.Counts }

func (r *refusalCounts) PairingRefused(reason string) { r.Add(reason) }

// storedToken is a token Secret as some agentctl wrote it.
type storedToken struct {
	peer    string
	created time.Duration // before now
	ttl     time.Duration // from creation
	mutate  func(*corev1.Secret)
}

// TestAcceptorRefusals calls Pair directly against the in-memory index: every refusal before
// the secret is proven reads the same and costs no Kubernetes API call; after it, each says why.
func TestAcceptorRefusals(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	west := newEnv(t, "west")
	north := newEnv(t, "north")
	identityOf := func(e *env) *peerv1.AgentIdentity { return e.self() }

	tests := []struct {
		name   string
		tokens map[string]storedToken // by id; the request uses "0000000000000001" unless id is set
		id     string
		secret string // default: the secret of the token
		joiner *peerv1.AgentIdentity
		reason string
		want   string
		is     error
		// apiCalls is whether the attempt may reach the Kubernetes API (only once the secret is
		// proven).
		apiCalls bool
	}{
		{name: "no token at all", reason: "no_open_token", want: "no open pairing token on this agent matches", is: peering.ErrPairingRefused},
		{name: "only a used token", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour, mutate: used}},
			reason: "no_open_token", want: "no open pairing token on this agent matches"},
		{name: "unknown id", tokens: map[string]storedToken{"00000000000000aa": {peer: "west", ttl: time.Hour}},
			reason: "unknown_token", want: "no open pairing token on this agent matches"},
		{name: "malformed id", tokens: map[string]storedToken{"00000000000000aa": {peer: "west", ttl: time.Hour}}, id: "../../etc",
			reason: "malformed", want: "no open pairing token on this agent matches"},
		{name: "wrong secret", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			secret: strings.Repeat("x", 43), reason: "wrong_secret", want: "no open pairing token on this agent matches"},
		{name: "used", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour, mutate: used}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenUsed, want: `token 0000000000000001 was already used (by environment "west"`},
		{name: "revoked", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour, mutate: revoked}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenRevoked, want: "was revoked at"},
		{name: "unbound (agentctl 0.1.0)", tokens: map[string]storedToken{"0000000000000001": {ttl: time.Hour}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenUnbound, want: "is bound to no environment (made by agentctl 0.1.0?)"},
		{name: "superseded by a newer token for the same peer", tokens: map[string]storedToken{
			"0000000000000001": {peer: "west", created: 2 * time.Minute, ttl: time.Hour},
			"00000000000000aa": {peer: "west", created: time.Minute, ttl: time.Hour},
		}, reason: TokenSuperseded, want: `was replaced by newer token 00000000000000aa for environment "west"`},
		{name: "expired", tokens: map[string]storedToken{"0000000000000001": {peer: "west", created: 10 * time.Minute, ttl: 5 * time.Minute}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenExpired, want: "expired at"},
		{name: "beyond the agent's cap, whatever the token asks", tokens: map[string]storedToken{"0000000000000001": {peer: "west", created: 2 * time.Hour, ttl: 7 * 24 * time.Hour}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenExpired, want: "this agent accepts a token for at most 1h0m0s after its creation"},
		{name: "no creation time", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour, mutate: func(s *corev1.Secret) { s.CreationTimestamp = metav1.Time{} }}, "00000000000000aa": {peer: "north", ttl: time.Hour}},
			reason: TokenExpired, want: "expired at"},
		{name: "bound to another environment", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour}}, joiner: identityOf(north),
			reason: "wrong_peer", want: `token 0000000000000001 is for environment "west", not "north"`},
		{name: "joiner named like the acceptor", tokens: map[string]storedToken{"0000000000000001": {peer: "east", ttl: time.Hour}}, joiner: &peerv1.AgentIdentity{Environment: "east"},
			reason: "invalid_identity", want: "own environment name", is: peering.ErrPairingInvalid},
		{name: "joiner name not a DNS label", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour}}, joiner: &peerv1.AgentIdentity{Environment: strings.Repeat("W", 10000)},
			reason: "invalid_identity", want: "environment: invalid value", is: peering.ErrPairingInvalid},
		{name: "joiner bundle invalid", tokens: map[string]storedToken{"0000000000000001": {peer: "west", ttl: time.Hour}}, joiner: &peerv1.AgentIdentity{Environment: "west", CaBundle: []byte("junk")},
			reason: "invalid_identity", want: "caBundle", is: peering.ErrPairingInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := fake.NewClientset()
			secrets := map[string]*Token{}
			for id, st := range tt.tokens {
				tok := &Token{ID: id, Secret: Secret(strings.Repeat(id[len(id)-1:], 43)), Expires: now.Add(-st.created + st.ttl)}
				s := TokenSecret(ns, tok, st.peer)
				s.CreationTimestamp = metav1.NewTime(now.Add(-st.created))
				if st.mutate != nil {
					st.mutate(s)
				}
				if _, err := kc.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				secrets[id] = tok
			}
			acc, counts, logs := newTestAcceptor(t, kc, func() time.Time { return now })
			req := &peerv1.PairRequest{TokenId: "0000000000000001", Identity: identityOf(west)}
			if tok, ok := secrets[req.TokenId]; ok {
				req.TokenSecret = string(tok.Secret)
			}
			if tt.id != "" {
				req.TokenId = tt.id
			}
			if tt.secret != "" {
				req.TokenSecret = tt.secret
			}
			if tt.joiner != nil {
				req.Identity = tt.joiner
			}
			before := len(kc.Actions())
			_, err := acc.Pair(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Pair() = %v, want %q", err, tt.want)
			}
			is := tt.is
			if is == nil {
				is = peering.ErrPairingRefused
			}
			if !errors.Is(err, is) {
				t.Fatalf("Pair() = %v, want %v", err, is)
			}
			if counts.Get(tt.reason) != 1 {
				t.Fatalf("refusals counted %v, want one %s", counts.Snapshot(), tt.reason)
			}
			if calls := kc.Actions()[before:]; len(calls) > 0 {
				t.Fatalf("a refused attempt made %d Kubernetes API calls: %v", len(calls), calls)
			}
			if req.TokenSecret != "" && (strings.Contains(err.Error(), req.TokenSecret) || strings.Contains(logs.String(), req.TokenSecret)) {
				t.Fatal("the secret appears in the error or the log")
			}
			unproven := map[string]bool{"no_open_token": true, "unknown_token": true, "malformed": true, "wrong_secret": true}
			if unproven[tt.reason] && strings.Contains(logs.String(), req.TokenId) {
				t.Fatalf("the token id of an attempt that did not prove the secret was logged:\n%s", logs)
			}
		})
	}
}

func used(s *corev1.Secret) {
	s.Data[KeyUsed], s.Data[KeyUsedBy], s.Data[KeyUsedAt] = []byte("true"), []byte("west"), []byte(time.Now().UTC().Format(time.RFC3339))
}

func revoked(s *corev1.Secret) { *s = *Revoke(s, time.Now(), "revoked with agentctl") }

// newTestAcceptor returns east's acceptor over kc, with its index synced.
func newTestAcceptor(t *testing.T, kc *fake.Clientset, now func() time.Time) (*Acceptor, *refusalCounts, *bytes.Buffer) {
	t.Helper()
	east := newEnv(t, "east")
	idx, err := NewTokenIndex(kc, ns, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	idx.now = now
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := idx.Start(ctx); err != nil {
		t.Fatal(err)
	}
	counts := &refusalCounts{}
	logs := &bytes.Buffer{}
	acc, err := NewAcceptor(AcceptorConfig{Namespace: ns, Kube: kc, Tokens: idx, CRDs: east.crds, Self: east.id, Metrics: counts, Now: now,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
	if err != nil {
		t.Fatal(err)
	}
	return acc, counts, logs
}

// TestAcceptorPairs redeems a bound token once: the Peer is created, the token used, and a flood
// of refusals logs one line per reason.
func TestAcceptorPairs(t *testing.T) {
	now := time.Now()
	kc := fake.NewClientset()
	west := newEnv(t, "west")
	tok, err := NewToken("east", []string{"a:1"}, []string{testPin}, now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s := TokenSecret(ns, tok, "west")
	s.CreationTimestamp = metav1.NewTime(now)
	if _, err := kc.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	acc, counts, logs := newTestAcceptor(t, kc, func() time.Time { return now })
	for range 1000 {
		_, err := acc.Pair(context.Background(), &peerv1.PairRequest{TokenId: "00000000000000ff", TokenSecret: "guess", Identity: west.self()})
		if !errors.Is(err, peering.ErrPairingRefused) {
			t.Fatal(err)
		}
	}
	if counts.Get("unknown_token") != 1000 || strings.Count(logs.String(), "pairing refused") != 1 {
		t.Fatalf("1000 refusals: counted %v, logged %d lines", counts.Snapshot(), strings.Count(logs.String(), "pairing refused"))
	}
	resp, err := acc.Pair(context.Background(), &peerv1.PairRequest{TokenId: tok.ID, TokenSecret: string(tok.Secret), Identity: west.self()})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetIdentity().GetEnvironment() != "east" {
		t.Fatalf("answered %v", resp)
	}
	got, err := kc.CoreV1().Secrets(ns).Get(context.Background(), TokenSecretName(tok.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := ReadTokenState(got); !st.Used || st.UsedBy != "west" || st.Peer != "west" {
		t.Fatalf("token state = %+v", st)
	}
}
