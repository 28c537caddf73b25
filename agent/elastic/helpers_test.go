package elastic

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/test/esim"
)

// testPassword is a test-only credential; secrets_test checks it never leaks.
const testPassword = "pw-7f3a9c1e-never-logged"

// fakeClock drives esim's notion of time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLogger(json bool) (hclog.Logger, *testenv.LogBuffer) {
	buf := &testenv.LogBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Trace, Output: buf, JSONFormat: json}), buf
}

// env is one esim node served over TLS with a client for it.
type env struct {
	node  *esim.Node
	srv   *httptest.Server
	c     *Client
	clock *fakeClock
	logs  *testenv.LogBuffer
}

// newEnv starts esim (version e.g. "9.3.2") behind an httptest TLS server;
// wrap, when given, sits in front of esim's handler.
func newEnv(t *testing.T, version string, wrap ...func(http.Handler) http.Handler) *env {
	t.Helper()
	clock := &fakeClock{t: time.UnixMilli(1719990000000)}
	node, err := esim.NewNode(esim.Config{Version: version, ClusterName: "c", NodeName: "n", Now: clock.Now})
	if err != nil {
		t.Fatalf("failed to create esim node: %v", err)
	}
	node.SetUser("elastic", testPassword)
	var h http.Handler = node.Handler()
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	log, buf := newTestLogger(false)
	c, err := NewClient(ClientConfig{
		URL: srv.URL, Username: "elastic", Password: Secret(testPassword),
		Transport: srv.Client().Transport, Logger: log,
	})
	if err != nil {
		t.Fatalf("failed to create client: %v", err)
	}
	return &env{node: node, srv: srv, c: c, clock: clock, logs: buf}
}

// raw sends a request to esim directly (setup and inspection).
func (e *env) raw(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("elastic", testPassword)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// testPKI is a CA and a server certificate issued by it.
type testPKI struct {
	caPEM []byte
	cert  tls.Certificate
}

// newPKI issues a server certificate for dnsNames (and 127.0.0.1).
func newPKI(t *testing.T, dnsNames ...string) testPKI {
	t.Helper()
	ca := testenv.CA(t, "test-http-ca", time.Time{}, time.Time{})
	leaf := testenv.New(t, testenv.Spec{
		CN: "es-http", Serial: 2, DNSNames: dnsNames, IPs: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, Parent: &ca,
	})
	return testPKI{caPEM: ca.PEM(), cert: leaf.TLS()}
}

// serveTLS serves h with the PKI's server certificate.
func serveTLS(t *testing.T, h http.Handler, p testPKI) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func ptr[T any](v T) *T { return &v }

// newPlainServer serves h over plain HTTP and returns its URL.
func newPlainServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
