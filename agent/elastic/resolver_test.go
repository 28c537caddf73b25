package elastic

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/test/esim"
)

var logsTarget = Target{Namespace: "data", Name: "logs"}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// eckSecrets are the Secrets ECK creates for data/logs.
func eckSecrets(password string, caPEM []byte) (*corev1.Secret, *corev1.Secret) {
	return secret("data", "logs-es-elastic-user", map[string]string{"elastic": password}),
		secret("data", "logs-es-http-certs-public", map[string]string{"ca.crt": string(caPEM), "tls.crt": "x"})
}

// agentUser is the agent's own user Secret of data/logs (agent/esuser writes it).
func agentUser(password string) *corev1.Secret {
	s := secret("data", "logs-ecklink-user", map[string]string{"username": "ecklink-agent", "password": password, "roles": "ecklink_settings"})
	s.Type = corev1.SecretTypeBasicAuth
	return s
}

// newESIMNode returns an esim node with the elastic user and the agent's user.
func newESIMNode(t *testing.T, password string) *esim.Node {
	t.Helper()
	node, err := esim.NewNode(esim.Config{Version: "9.3.2", ClusterName: "c", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	node.SetUser("elastic", password)
	node.SetUser("ecklink-agent", password)
	return node
}

func TestResolverProductionPath(t *testing.T) {
	pki := newPKI(t, ServerName(logsTarget))
	node := newESIMNode(t, testPassword)
	srv := serveTLS(t, node.Handler(), pki)
	_, certs := eckSecrets(testPassword, pki.caPEM)
	user := agentUser(testPassword)
	kube := fake.NewClientset(user, certs)
	r, err := NewResolver(ResolverConfig{Kube: kube, Endpoints: map[Target]string{logsTarget: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := r.Client(ctx, logsTarget)
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("Info through the production TLS path: %v", err)
	}
	if c.Username() != "ecklink-agent" {
		t.Errorf("Username = %q, want the agent's user", c.Username())
	}
	if again, _ := r.Client(ctx, logsTarget); again != c {
		t.Error("unchanged Secrets did not reuse the client")
	}

	// The user's password changes: the new client authenticates.
	node.SetUser("ecklink-agent", "rotated-"+testPassword)
	if _, err := c.Info(ctx); !IsUnauthorized(err) {
		t.Fatalf("old client err = %v, want 401", err)
	}
	user.Data["password"] = []byte("rotated-" + testPassword)
	if _, err := kube.CoreV1().Secrets("data").Update(ctx, user, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c2, err := r.Client(ctx, logsTarget)
	if err != nil || c2 == c {
		t.Fatalf("Client after rotation = %p (old %p), %v", c2, c, err)
	}
	if _, err := c2.Info(ctx); err != nil {
		t.Fatalf("Info after rotation: %v", err)
	}

	// ECK issues a new HTTP CA: the old CA no longer verifies the server.
	pki2 := newPKI(t, ServerName(logsTarget))
	srv2 := serveTLS(t, node.Handler(), pki2)
	r2, _ := NewResolver(ResolverConfig{Kube: kube, Endpoints: map[Target]string{logsTarget: srv2.URL}})
	c3, _ := r2.Client(ctx, logsTarget)
	if _, err := c3.Info(ctx); err == nil || Retryable(err) {
		t.Fatalf("Info with a stale CA = %v, want a non-retryable TLS error", err)
	}
	certs.Data["ca.crt"] = pki2.caPEM
	if _, err := kube.CoreV1().Secrets("data").Update(ctx, certs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c4, err := r2.Client(ctx, logsTarget)
	if err != nil || c4 == c3 {
		t.Fatalf("Client after CA rotation = %v", err)
	}
	if _, err := c4.Info(ctx); err != nil {
		t.Fatalf("Info after CA rotation: %v", err)
	}
}

func TestResolverVerifiesECKServerName(t *testing.T) {
	// The certificate is valid for 127.0.0.1 (the override's host) but not
	// for ECK's service name: the client must refuse it.
	pki := newPKI(t, "elsewhere.example.com")
	srv := serveTLS(t, newESIMNode(t, testPassword).Handler(), pki)
	_, certs := eckSecrets(testPassword, pki.caPEM)
	r, _ := NewResolver(ResolverConfig{Kube: fake.NewClientset(agentUser(testPassword), certs), Endpoints: map[Target]string{logsTarget: srv.URL}})
	c, err := r.Client(context.Background(), logsTarget)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Info(context.Background())
	if err == nil || !strings.Contains(err.Error(), "logs-es-http.data.svc") || Retryable(err) {
		t.Fatalf("err = %v, want a certificate name mismatch for logs-es-http.data.svc", err)
	}
}

func TestResolverTransportHook(t *testing.T) {
	node := newESIMNode(t, testPassword)
	srv := serveTLS(t, node.Handler(), newPKI(t, "ignored"))
	_, certs := eckSecrets(testPassword, newPKI(t, "x").caPEM)
	var seen atomic.Value
	r, _ := NewResolver(ResolverConfig{
		Kube: fake.NewClientset(agentUser(testPassword), certs),
		NewTransport: func(conf *tls.Config) http.RoundTripper {
			seen.Store(conf.ServerName)
			return srv.Client().Transport // trusts the test server
		},
	})
	c, err := r.Client(context.Background(), logsTarget)
	if err != nil {
		t.Fatal(err)
	}
	if got := seen.Load(); got != "logs-es-http.data.svc" {
		t.Errorf("ServerName = %v", got)
	}
	if r.URL(logsTarget) != "https://logs-es-http.data.svc:9200" {
		t.Errorf("default URL = %s", r.URL(logsTarget))
	}
	_ = c
}

// The elastic user only when asked for: then it is read from ECK's Secret, and a cluster without
// it (spec.auth.disableElasticUser) says so; otherwise the elastic Secret alone does not do.
func TestResolverElasticUser(t *testing.T) {
	pki := newPKI(t, ServerName(logsTarget))
	node := newESIMNode(t, testPassword)
	srv := serveTLS(t, node.Handler(), pki)
	elasticUser, certs := eckSecrets(testPassword, pki.caPEM)
	ctx := context.Background()
	eps := map[Target]string{logsTarget: srv.URL}

	r, _ := NewResolver(ResolverConfig{Kube: fake.NewClientset(elasticUser, certs), Endpoints: eps, UseElasticUser: true})
	c, err := r.Client(ctx, logsTarget)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx); err != nil || c.Username() != "elastic" {
		t.Fatalf("as elastic: user %q, %v", c.Username(), err)
	}
	r, _ = NewResolver(ResolverConfig{Kube: fake.NewClientset(elasticUser, certs), Endpoints: eps})
	if _, err := r.Client(ctx, logsTarget); !errors.Is(err, ErrUserNotProvisioned) {
		t.Fatalf("without the agent's user: err = %v, want ErrUserNotProvisioned", err)
	}
}

func TestResolverErrors(t *testing.T) {
	ca := newPKI(t, "x").caPEM
	tests := []struct {
		name      string
		objects   []*corev1.Secret
		elastic   bool
		endpoints map[Target]string
		target    Target
		want      []string
	}{
		{
			name:    "missing user secret",
			objects: []*corev1.Secret{secret("data", "logs-es-http-certs-public", map[string]string{"ca.crt": string(ca)})},
			target:  logsTarget, want: []string{"data/logs-ecklink-user", "not found", "not provisioned yet"},
		},
		{
			name:    "missing password key",
			objects: []*corev1.Secret{secret("data", "logs-ecklink-user", map[string]string{"username": "ecklink-agent"})},
			target:  logsTarget, want: []string{"data/logs-ecklink-user", `lacks "username" or "password"`},
		},
		{
			name:    "missing elastic user secret",
			elastic: true,
			objects: []*corev1.Secret{secret("data", "logs-es-http-certs-public", map[string]string{"ca.crt": string(ca)})},
			target:  logsTarget, want: []string{"data/logs-es-elastic-user", "not found"},
		},
		{
			name:    "missing elastic password key",
			elastic: true,
			objects: []*corev1.Secret{secret("data", "logs-es-elastic-user", map[string]string{"other": "x"})},
			target:  logsTarget, want: []string{"data/logs-es-elastic-user", `no key "elastic"`, "disableElasticUser"},
		},
		{
			name:    "missing CA secret",
			objects: []*corev1.Secret{agentUser(testPassword)},
			target:  logsTarget, want: []string{"data/logs-es-http-certs-public", "not found"},
		},
		{
			name: "bad CA",
			objects: []*corev1.Secret{
				agentUser(testPassword),
				secret("data", "logs-es-http-certs-public", map[string]string{"ca.crt": "not a pem"}),
			},
			target: logsTarget, want: []string{"data/logs-es-http-certs-public", "ca.crt", "no PEM certificate"},
		},
		{
			name:   "bad target",
			target: Target{Namespace: "Data", Name: "logs"}, want: []string{"namespace \"Data\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := fake.NewClientset()
			for _, s := range tt.objects {
				_ = kube.Tracker().Add(s)
			}
			r, err := NewResolver(ResolverConfig{Kube: kube, Endpoints: tt.endpoints, UseElasticUser: tt.elastic})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Client(context.Background(), tt.target)
			if err == nil {
				t.Fatal("err = nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("err leaks the password: %q", err)
			}
		})
	}
	if _, err := NewResolver(ResolverConfig{}); err == nil {
		t.Error("NewResolver without Kube: err = nil")
	}
	if _, err := NewResolver(ResolverConfig{Kube: fake.NewClientset(), Endpoints: map[Target]string{logsTarget: "ftp://x"}}); err == nil {
		t.Error("NewResolver with a bad endpoint: err = nil")
	}
}

func TestResolverHTTPOverrideSkipsCA(t *testing.T) {
	node := newESIMNode(t, testPassword)
	srv := newPlainServer(t, node.Handler())
	r, _ := NewResolver(ResolverConfig{
		Kube:      fake.NewClientset(agentUser(testPassword)),
		Endpoints: map[Target]string{logsTarget: srv},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := r.Client(ctx, logsTarget)
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("Info: %v", err)
	}
}

// TestResolverReadsTheUserFromTheCache: the agent's user Secret comes from the informer cache
// when it holds it (no GET per pass), from the API server when it does not yet; a password
// changed in the cache builds a new client.
func TestResolverReadsTheUserFromTheCache(t *testing.T) {
	pki := newPKI(t, ServerName(logsTarget))
	srv := serveTLS(t, newESIMNode(t, testPassword).Handler(), pki)
	_, certs := eckSecrets(testPassword, pki.caPEM)
	kube := fake.NewClientset(agentUser(testPassword), certs)
	var held atomic.Pointer[corev1.Secret]
	cached := func(ns, name string) (*corev1.Secret, bool) {
		if s := held.Load(); s != nil && s.Namespace == ns && s.Name == name {
			return s, true
		}
		if name == certs.Name {
			return certs, true
		}
		return nil, false
	}
	r, err := NewResolver(ResolverConfig{Kube: kube, Endpoints: map[Target]string{logsTarget: srv.URL}, Cached: cached})
	if err != nil {
		t.Fatal(err)
	}
	gets := func() int {
		n := 0
		for _, a := range kube.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == "secrets" {
				n++
			}
		}
		return n
	}
	ctx := context.Background()
	c, err := r.Client(ctx, logsTarget)
	if err != nil || gets() != 1 {
		t.Fatalf("Client before the cache holds the user: %v, %d GETs, want 1", err, gets())
	}
	held.Store(agentUser(testPassword))
	for range 5 {
		again, err := r.Client(ctx, logsTarget)
		if err != nil || again != c {
			t.Fatalf("Client from the cache: %v (same client %v)", err, again == c)
		}
	}
	if n := gets(); n != 1 {
		t.Errorf("%d GETs after 5 clients from the cache, want still 1", n)
	}
	held.Store(agentUser("rotated-" + testPassword))
	if c2, err := r.Client(ctx, logsTarget); err != nil || c2 == c {
		t.Errorf("a password changed in the cache kept the old client (%v)", err)
	}
}
