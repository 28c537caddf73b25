package identity

import (
	"context"
	"crypto/x509"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
)

const testNS = "ecklink"

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig(env string, client kubernetes.Interface, clock backoff.Clock) Config {
	return Config{
		Environment:  env,
		Namespace:    testNS,
		Client:       client,
		Endpoints:    []string{"agent." + env + ".example.com:8443", "127.0.0.1:8443"},
		CAValidity:   90 * time.Minute,
		LeafValidity: 3 * time.Minute,
		RotateAt:     2.0 / 3.0,
		Overlap:      10 * time.Minute,
		GatePoll:     time.Minute,
		Clock:        clock,
	}
}

// newEastAtEpoch is an initialised identity of east on its own fake API server (cfg.Client), with
// a fake clock at epoch.
func newEastAtEpoch(t *testing.T) (*Identity, Config, *backoff.FakeClock) {
	t.Helper()
	clock := backoff.NewFakeClock(epoch)
	cfg := testConfig("east", fake.NewClientset(), clock)
	return newTestIdentity(t, cfg), cfg, clock
}

// newEnvIdentity is an initialised identity of env, with its own fake API server, on clock.
func newEnvIdentity(t *testing.T, env string, clock backoff.Clock) *Identity {
	t.Helper()
	return newTestIdentity(t, testConfig(env, fake.NewClientset(), clock))
}

func newTestIdentity(t *testing.T, cfg Config) *Identity {
	t.Helper()
	id, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	if err := id.Init(context.Background()); err != nil {
		t.Fatalf("Init() error = %v", err)
	}
	return id
}

func TestConfigValidate(t *testing.T) {
	client := fake.NewClientset()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "upper case environment", mutate: func(c *Config) { c.Environment = "EU-West" }, wantErr: `environment: invalid value "EU-West"`},
		{name: "empty environment", mutate: func(c *Config) { c.Environment = "" }, wantErr: "environment: invalid value"},
		{name: "bad namespace", mutate: func(c *Config) { c.Namespace = "a_b" }, wantErr: "namespace: invalid value"},
		{name: "no client", mutate: func(c *Config) { c.Client = nil }, wantErr: "client: a Kubernetes client is required"},
		{name: "endpoint without port", mutate: func(c *Config) { c.Endpoints = []string{"a:1", "host"} }, wantErr: `endpoints[1]: invalid value "host"`},
		{name: "endpoint bad port", mutate: func(c *Config) { c.Endpoints = []string{"a:0"} }, wantErr: "endpoints[0]: invalid value \"a:0\": port must be"},
		{name: "leaf longer than CA", mutate: func(c *Config) { c.LeafValidity = 2 * time.Hour }, wantErr: "leafValidity:"},
		{name: "rotateAt out of range", mutate: func(c *Config) { c.RotateAt = 1.5 }, wantErr: "rotateAt:"},
		{name: "overlap too long", mutate: func(c *Config) { c.Overlap = time.Hour }, wantErr: "overlap:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("east", client, nil)
			tt.mutate(&cfg)
			_, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New() error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		id, err := New(Config{Environment: "east", Namespace: testNS, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		if id.cfg.CAValidity != DefaultCAValidity || id.cfg.LeafValidity != DefaultLeafValidity || id.cfg.Overlap != DefaultOverlap {
			t.Fatalf("defaults not applied: %+v", id.cfg)
		}
	})
}

func TestInitCreatesAndReloads(t *testing.T) {
	client := fake.NewClientset()
	clock := backoff.NewFakeClock(epoch)
	id := newTestIdentity(t, testConfig("east", client, clock))
	ctx := context.Background()

	sec, err := client.CoreV1().Secrets(testNS).Get(ctx, SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{KeyCACert, KeyCAKey, KeyBundle} {
		if len(sec.Data[k]) == 0 {
			t.Errorf("secret key %s is empty", k)
		}
	}
	cm, err := client.CoreV1().ConfigMaps(testNS).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[KeyEnvironment] != "east" || cm.Data[KeyPin] != id.Pin() || cm.Data[KeyBundle] != string(id.Bundle()) {
		t.Fatalf("configmap data = %v", cm.Data)
	}
	if cm.Data[KeyEndpoints] != "agent.east.example.com:8443\n127.0.0.1:8443" {
		t.Fatalf("endpoints = %q", cm.Data[KeyEndpoints])
	}
	if strings.Contains(cm.Data[KeyBundle], "PRIVATE KEY") {
		t.Fatal("configmap leaks the CA key")
	}
	if _, err := pemutil.ValidateCABundle([]byte(cm.Data[KeyBundle]), clock.Now(), pemutil.Limits{}); err != nil {
		t.Fatalf("published bundle invalid: %v", err)
	}

	again := newTestIdentity(t, testConfig("east", client, clock))
	if again.Pin() != id.Pin() {
		t.Fatalf("reloaded identity has pin %s, want %s", again.Pin(), id.Pin())
	}
	if again.Leaf().SerialNumber.Cmp(id.Leaf().SerialNumber) == 0 {
		t.Fatal("leaves must be issued per process, in memory")
	}
}

func TestLeafCertificate(t *testing.T) {
	clock := backoff.NewFakeClock(epoch)
	id := newEnvIdentity(t, "east", clock)
	leaf := id.Leaf()
	if leaf.Subject.CommonName != "east" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "ecklink://environment/east" {
		t.Errorf("URIs = %v", leaf.URIs)
	}
	if !slices.Equal(leaf.DNSNames, []string{"agent.east.example.com"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("SANs = %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || leaf.IsCA {
		t.Errorf("usages = %v, IsCA = %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if got := leaf.NotAfter.Sub(clock.Now()); got != 3*time.Minute {
		t.Errorf("leaf lives %v after now, want 3m", got)
	}
	roots := x509.NewCertPool()
	roots.AddCert(id.CACertificates()[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: clock.Now()}); err != nil {
		t.Errorf("leaf does not chain to the CA: %v", err)
	}
	if env, err := EnvironmentFromCertificate(leaf); err != nil || env != "east" {
		t.Errorf("EnvironmentFromCertificate() = %q, %v", env, err)
	}
}

func TestEnvironmentFromCertificate(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{name: "one", uris: []*url.URL{u("ecklink://environment/west")}, want: "west"},
		{name: "other schemes ignored", uris: []*url.URL{u("spiffe://x/y"), u("ecklink://environment/west")}, want: "west"},
		{name: "none", uris: nil, wantErr: "no URI SAN"},
		{name: "two", uris: []*url.URL{u("ecklink://environment/a"), u("ecklink://environment/b")}, wantErr: "exactly one"},
		{name: "wrong host", uris: []*url.URL{u("ecklink://env/a")}, wantErr: "exactly one"},
		{name: "query", uris: []*url.URL{u("ecklink://environment/a?x=1")}, wantErr: "exactly one"},
		{name: "not a label", uris: []*url.URL{u("ecklink://environment/a/b")}, wantErr: "environment: invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EnvironmentFromCertificate(&x509.Certificate{URIs: tt.uris})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
