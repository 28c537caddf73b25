package elastic

import (
	"context"
	"crypto/tls"
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

// newESIMNode returns an esim node with the elastic user.
func newESIMNode(t *testing.T, password string) *esim.Node {
	t.Helper()
	node, err := esim.NewNode(esim.Config{Version: "9.3.2", ClusterName: "c", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	node.SetUser("elastic", password)
	return node
}

func TestResolverProductionPath(t *testing.T) {
	pki := newPKI(t, ServerName(logsTarget))
	node := newESIMNode(t, testPassword)
	srv := serveTLS(t, node.Handler(), pki)
	user, certs := eckSecrets(testPassword, pki.caPEM)
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
	if again, _ := r.Client(ctx, logsTarget); again != c {
		t.Error("unchanged Secrets did not reuse the client")
	}

	// ECK rotates the password: the new client authenticates.
	node.SetUser("elastic", "rotated-"+testPassword)
	if _, err := c.Info(ctx); !IsUnauthorized(err) {
		t.Fatalf("old client err = %v, want 401", err)
	}
	user.Data["elastic"] = []byte("rotated-" + testPassword)
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
	user, certs := eckSecrets(testPassword, pki.caPEM)
	r, _ := NewResolver(ResolverConfig{Kube: fake.NewClientset(user, certs), Endpoints: map[Target]string{logsTarget: srv.URL}})
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
	user, certs := eckSecrets(testPassword, newPKI(t, "x").caPEM)
	var seen atomic.Value
	r, _ := NewResolver(ResolverConfig{
		Kube: fake.NewClientset(user, certs),
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

func TestResolverErrors(t *testing.T) {
	ca := newPKI(t, "x").caPEM
	tests := []struct {
		name      string
		objects   []*corev1.Secret
		endpoints map[Target]string
		target    Target
		want      []string
	}{
		{
			name:    "missing user secret",
			objects: []*corev1.Secret{secret("data", "logs-es-http-certs-public", map[string]string{"ca.crt": string(ca)})},
			target:  logsTarget, want: []string{"data/logs-es-elastic-user", "not found"},
		},
		{
			name:    "missing password key",
			objects: []*corev1.Secret{secret("data", "logs-es-elastic-user", map[string]string{"other": "x"})},
			target:  logsTarget, want: []string{"data/logs-es-elastic-user", `no key "elastic"`},
		},
		{
			name:    "missing CA secret",
			objects: []*corev1.Secret{secret("data", "logs-es-elastic-user", map[string]string{"elastic": testPassword})},
			target:  logsTarget, want: []string{"data/logs-es-http-certs-public", "not found"},
		},
		{
			name: "bad CA",
			objects: []*corev1.Secret{
				secret("data", "logs-es-elastic-user", map[string]string{"elastic": testPassword}),
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
			r, err := NewResolver(ResolverConfig{Kube: kube, Endpoints: tt.endpoints})
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
		Kube:      fake.NewClientset(secret("data", "logs-es-elastic-user", map[string]string{"elastic": testPassword})),
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
