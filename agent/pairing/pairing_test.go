package pairing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

const ns = "ecklink"

// env is one agent's side of a pairing test: an identity, fake API clients, and optionally a
// gRPC server that answers Pair (and refuses Sync streams, as the agent's server does).
type env struct {
	name   string
	id     *identity.Identity
	kube   kubernetes.Interface
	crds   *kube.Client
	tokens *TokenIndex
	addr   string
	// pairCalls records every Pair request that reached the server.
	mu        sync.Mutex
	pairCalls []*peerv1.PairRequest
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	e := &env{name: name, kube: fake.NewClientset()}
	var err error
	if e.crds, err = kube.NewClient(kube.ClientConfig{Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)}); err != nil {
		t.Fatal(err)
	}
	if e.id, err = identity.New(identity.Config{Environment: name, Namespace: ns, Client: e.kube}); err != nil {
		t.Fatal(err)
	}
	if err := e.id.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

type recordingPairer struct {
	e    *env
	next peering.Pairer
}

func (r recordingPairer) Pair(ctx context.Context, req *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	r.e.mu.Lock()
	r.e.pairCalls = append(r.e.pairCalls, req)
	r.e.mu.Unlock()
	return r.next.Pair(ctx, req)
}

// serve starts the agent's peer port with pairing enabled, trusting no peer, as the agent
// does: the token index, the acceptor and the Port.
func (e *env) serve(t *testing.T, now func() time.Time) {
	t.Helper()
	e.serveWith(t, now, peering.PortLimits{})
}

// serveWith is serve with the port's limits.
func (e *env) serveWith(t *testing.T, now func() time.Time, limits peering.PortLimits) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	if e.tokens, err = NewTokenIndex(e.kube, ns, time.Hour); err != nil {
		t.Fatal(err)
	}
	e.tokens.now = now
	if err := e.tokens.Start(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := NewAcceptor(AcceptorConfig{Namespace: ns, Kube: e.kube, Tokens: e.tokens, CRDs: e.crds, Self: e.id, Version: "test", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := peering.NewManager(peering.Config{Environment: e.name, Handler: peering.NopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	trust := noTrust{}
	srv, err := peering.NewServer(peering.ServerConfig{Manager: m, Pairer: recordingPairer{e: e, next: acc},
		Authenticate: func(ctx context.Context) (string, error) { return e.id.AuthenticatePeer(ctx, trust) }})
	if err != nil {
		t.Fatal(err)
	}
	port, err := peering.NewPort(peering.PortConfig{TLS: e.id.ServerTLSConfigWithPairing(trust), Server: srv, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = port.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	e.addr = lis.Addr().String()
}

func (e *env) calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pairCalls)
}

type noTrust struct{}

func (noTrust) PeerCAs(string) []*x509.Certificate { return nil }
func (noTrust) Environments() []string             { return nil }

// token creates a token of e for west valid for ttl, records it as agentctl does, and waits
// until the agent's index holds it.
func (e *env) token(t *testing.T, ttl time.Duration, endpoints ...string) *Token {
	t.Helper()
	return e.tokenFor(t, "west", ttl, endpoints...)
}

// tokenFor is token for another joining environment.
func (e *env) tokenFor(t *testing.T, peer string, ttl time.Duration, endpoints ...string) *Token {
	t.Helper()
	if len(endpoints) == 0 {
		endpoints = []string{e.addr}
	}
	tok, err := NewToken(e.name, endpoints, []string{e.id.Pin()}, time.Now().Add(ttl))
	if err != nil {
		t.Fatal(err)
	}
	sec := TokenSecret(ns, tok, peer)
	// The API server sets it; the fake client does not.
	sec.CreationTimestamp = metav1.Now()
	if _, err := e.kube.CoreV1().Secrets(ns).Create(context.Background(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.tokens != nil {
		e.waitIndexed(t, tok.ID, func(*indexedToken) bool { return true })
	}
	return tok
}

// waitIndexed waits until the index holds token id in a state cond accepts.
func (e *env) waitIndexed(t *testing.T, id string, cond func(*indexedToken) bool) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "token "+id+" to be indexed as expected", func() bool {
		tok, ok := e.tokens.lookup(id)
		return ok && cond(tok)
	})
}

func (e *env) self() *peerv1.AgentIdentity {
	return &peerv1.AgentIdentity{Environment: e.name, CaBundle: e.id.Bundle(), Version: "test"}
}

func TestJoin(t *testing.T) {
	ctx := context.Background()
	east, west := newEnv(t, "east"), newEnv(t, "west")
	east.serve(t, time.Now)

	tok := east.token(t, time.Minute)
	joined, err := Join(ctx, tok, west.self(), JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if joined.Acceptor.GetEnvironment() != "east" || joined.Endpoint != east.addr || string(joined.Acceptor.GetCaBundle()) != string(east.id.Bundle()) {
		t.Fatalf("joined = %+v", joined)
	}
	p, err := east.crds.Peers().Get(ctx, ns, "west")
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Dial || p.Spec.CABundle != string(west.id.Bundle()) || p.Annotations[AnnotationPairedBy] != "token "+tok.ID {
		t.Fatalf("Peer west in east = %+v", p)
	}
	sec, err := east.kube.CoreV1().Secrets(ns).Get(ctx, TokenSecretName(tok.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := ReadTokenState(sec); !st.Used || st.UsedBy != "west" {
		t.Fatalf("token state = %+v", st)
	}
	for k, v := range sec.Data {
		if strings.Contains(string(v), string(tok.Secret)) {
			t.Fatalf("token Secret key %s holds the secret", k)
		}
	}

	t.Run("a token works once", func(t *testing.T) {
		east.waitIndexed(t, tok.ID, func(it *indexedToken) bool { return it.state.Used })
		_, err := Join(ctx, tok, west.self(), JoinOptions{})
		if err == nil || !strings.Contains(err.Error(), "no open pairing token on this agent matches") {
			t.Fatalf("Join() = %v, want a refusal", err)
		}
	})
	t.Run("already paired", func(t *testing.T) {
		_, err := Join(ctx, east.token(t, time.Minute), west.self(), JoinOptions{})
		if err == nil || !strings.Contains(err.Error(), `environment "west" is already paired`) {
			t.Fatalf("Join() = %v", err)
		}
	})
}

func TestJoinRefusals(t *testing.T) {
	ctx := context.Background()
	east, west := newEnv(t, "east"), newEnv(t, "west")
	east.serve(t, time.Now)
	impostor := newEnv(t, "east") // the same environment name, another CA
	impostor.serve(t, time.Now)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name    string
		token   func() *Token
		wantIs  error
		want    string
		secret  bool // whether the token's secret may reach east's server
		calls   int
		mutator func(*Token)
	}{
		// Before the secret is proven, every refusal reads the same (acceptor_test.go has the details).
		{name: "expired", token: func() *Token { return east.token(t, -time.Second) }, want: "no open pairing token on this agent matches", calls: 1},
		{name: "wrong secret", token: func() *Token {
			tok := east.token(t, time.Minute)
			tok.Secret = Secret(strings.Repeat("x", 43))
			return tok
		}, want: "no open pairing token on this agent matches", calls: 1},
		{name: "unknown token", token: func() *Token {
			tok := east.token(t, time.Minute)
			tok.ID = "00000000000000ff"
			return tok
		}, want: "no open pairing token on this agent matches", calls: 1},
		{name: "pin mismatch", token: func() *Token { return east.token(t, time.Minute, impostor.addr) }, wantIs: ErrPinMismatch,
			want: "server CA " + impostor.id.Pin() + ", token pins " + east.id.Pin()},
		{name: "unreachable", token: func() *Token { return east.token(t, time.Minute, dead) }, wantIs: ErrUnreachable},
		{name: "wrong environment in the token", token: func() *Token {
			tok := east.token(t, time.Minute)
			tok.Environment = "south"
			return tok
		}, wantIs: ErrPinMismatch, want: `the server is the agent of environment "east", the token names "south"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeImpostor := east.calls(), impostor.calls()
			tok := tt.token()
			_, err := Join(ctx, tok, west.self(), JoinOptions{Timeout: 2 * time.Second})
			if err == nil {
				t.Fatal("Join() succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("Join() = %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Join() = %v, want %q", err, tt.want)
			}
			t.Logf("Join() error: %v", err)
			if strings.Contains(err.Error(), string(tok.Secret)) {
				t.Fatalf("error leaks the secret: %v", err)
			}
			if got := east.calls() - before; got != tt.calls {
				t.Fatalf("east received %d Pair calls, want %d", got, tt.calls)
			}
			if impostor.calls() != beforeImpostor {
				t.Fatal("the impostor received a Pair call: the secret left the joiner")
			}
		})
	}
	if _, err := east.crds.Peers().Get(ctx, ns, "west"); err == nil {
		t.Fatal("a refused join created a Peer")
	}
}

// TestJoinRetriesWhenRateLimited: a joiner whose address spent its pairing attempts waits for
// the next one instead of failing: the refusal comes before the token is looked at.
func TestJoinRetriesWhenRateLimited(t *testing.T) {
	east, west := newEnv(t, "east"), newEnv(t, "west")
	east.serveWith(t, time.Now, peering.PortLimits{PairBurst: 1, PairRate: 0.5})
	wrong := east.token(t, time.Minute)
	wrong.Secret = Secret(strings.Repeat("x", 43))
	if _, err := Join(context.Background(), wrong, west.self(), JoinOptions{}); err == nil {
		t.Fatal("a wrong secret joined")
	}
	start := time.Now()
	joined, err := Join(context.Background(), east.token(t, time.Minute), west.self(), JoinOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Join() after a rate-limited attempt = %v", err)
	}
	if joined.Acceptor.GetEnvironment() != "east" || time.Since(start) < time.Second {
		t.Fatalf("joined %v after %s: want a retry after the rate limit's wait", joined.Acceptor, time.Since(start))
	}
	if east.calls() != 2 {
		t.Fatalf("%d calls reached the acceptor, want 2 (the rate-limited one did not)", east.calls())
	}
}

// TestPairingPort checks the agent's one port: anonymous clients reach only Pair, clients of an
// unpaired CA are refused in the handshake.
func TestPairingPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	east, intruder := newEnv(t, "east"), newEnv(t, "west")
	east.serve(t, time.Now)

	dial := func(conf *tls.Config) peerv1.PeerServiceClient {
		cc, err := grpc.NewClient(east.addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return peerv1.NewPeerServiceClient(cc)
	}
	t.Run("anonymous Sync is refused", func(t *testing.T) {
		v := &pinVerifier{pins: []string{east.id.Pin()}, env: "east", now: time.Now}
		stream, err := dial(v.tlsConfig()).Sync(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Sync() = %v, want Unauthenticated", err)
		}
	})
	t.Run("unpaired client certificate is refused in the handshake", func(t *testing.T) {
		trustEast := identitytest.NewTrust(map[string][]*x509.Certificate{"east": east.id.CACertificates()})
		stream, err := dial(intruder.id.ClientTLSConfig(trustEast, "east")).Sync(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		// The handshake fails (the alert or a reset reaches the client): the call never gets to
		// the server, which would answer Unauthenticated.
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("Sync() = %v, want a failed TLS handshake (Unavailable)", err)
		}
	})
}
