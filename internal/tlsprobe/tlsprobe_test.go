package tlsprobe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return ca{cert: c, key: key}
}

// serve starts a TLS server presenting a leaf of c for dnsName; it accepts, handshakes and
// closes connections.
func serve(t *testing.T, c ca, dnsName string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, c.cert.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}
	}()
	return ln.Addr().String()
}

// plain starts a TCP server that is not TLS: it writes garbage and closes.
func plain(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			_ = conn.Close()
		}
	}()
	return ln.Addr().String()
}

func TestProbe(t *testing.T) {
	good, other := newCA(t, "transport CA"), newCA(t, "another CA")
	addr := serve(t, good, "logs-es-remote-cluster.ns.svc")
	dead := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := ln.Addr().String()
		_ = ln.Close()
		return a
	}()
	now := time.Now()
	for _, tc := range []struct {
		name string
		t    Target
		now  time.Time
		step string
	}{
		{"verified", Target{Address: addr, ServerName: "logs-es-remote-cluster.ns.svc", CAs: []*x509.Certificate{good.cert}}, now, StepOK},
		{"no server name: the chain alone", Target{Address: addr, CAs: []*x509.Certificate{other.cert, good.cert}}, now, StepOK},
		{"untrusted", Target{Address: addr, ServerName: "logs-es-remote-cluster.ns.svc", CAs: []*x509.Certificate{other.cert}}, now, StepTrust},
		{"no CA at all", Target{Address: addr, ServerName: "logs-es-remote-cluster.ns.svc"}, now, StepTrust},
		{"expired by then", Target{Address: addr, CAs: []*x509.Certificate{good.cert}}, now.Add(2 * time.Hour), StepTrust},
		{"wrong server name", Target{Address: addr, ServerName: "logs-es-http.ns.svc", CAs: []*x509.Certificate{good.cert}}, now, StepServerName},
		{"nothing listens", Target{Address: dead, CAs: []*x509.Certificate{good.cert}}, now, StepDial},
		{"not TLS", Target{Address: plain(t), CAs: []*x509.Certificate{good.cert}}, now, StepHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Probe(context.Background(), tc.t, 5*time.Second, tc.now)
			if r.Step != tc.step || (r.Step == StepOK) != (r.Err == nil) || r.OK() != (tc.step == StepOK) {
				t.Fatalf("Probe() = step %s (%v), want %s", r.Step, r.Err, tc.step)
			}
			if r.Duration <= 0 || r.Duration > 5*time.Second {
				t.Fatalf("duration %s", r.Duration)
			}
			if tc.step != StepDial && tc.step != StepHandshake && len(r.Chain) != 2 {
				t.Fatalf("chain of %d certificates", len(r.Chain))
			}
		})
	}
}
