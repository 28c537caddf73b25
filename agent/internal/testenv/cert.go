// Package testenv holds what the agent's tests share: certificates and keys made on the spot.
// Only _test.go files import it; the agent itself never does.
package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// Cert is a certificate made for a test, with its P-256 key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	DER  []byte
}

// PEM is the certificate as one PEM block.
func (c Cert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

// Spec says what certificate to make. A zero NotBefore is an hour ago, a zero NotAfter an hour
// ahead, a zero Serial 1; a nil Parent makes it self-signed.
type Spec struct {
	CN                  string
	Serial              int64
	NotBefore, NotAfter time.Time
	// IsCA marks it a CA; self-signed and CA certificates carry valid basic constraints.
	IsCA        bool
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	DNSNames    []string
	IPs         []net.IP
	Parent      *Cert
}

// Make makes the certificate s describes, with a new key.
func Make(s Spec) (Cert, error) {
	now := time.Now()
	if s.NotBefore.IsZero() {
		s.NotBefore = now.Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = now.Add(time.Hour)
	}
	if s.Serial == 0 {
		s.Serial = 1
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(s.Serial), Subject: pkix.Name{CommonName: s.CN},
		NotBefore: s.NotBefore, NotAfter: s.NotAfter,
		IsCA: s.IsCA, BasicConstraintsValid: s.IsCA || s.Parent == nil,
		KeyUsage: s.KeyUsage, ExtKeyUsage: s.ExtKeyUsage, DNSNames: s.DNSNames, IPAddresses: s.IPs,
	}
	parent, signer := tmpl, key
	if s.Parent != nil {
		parent, signer = s.Parent.Cert, s.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return Cert{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Cert{}, err
	}
	return Cert{Cert: cert, Key: key, DER: der}, nil
}

// New is Make failing tb on an error.
func New(tb testing.TB, s Spec) Cert {
	tb.Helper()
	c, err := Make(s)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// CA is a self-signed CA for cn, valid from notBefore to notAfter (zero: an hour either side of
// now), that may sign certificates.
func CA(tb testing.TB, cn string, notBefore, notAfter time.Time) Cert {
	tb.Helper()
	return New(tb, Spec{CN: cn, NotBefore: notBefore, NotAfter: notAfter, IsCA: true, KeyUsage: x509.KeyUsageCertSign})
}

// Fingerprint is the SHA-256 fingerprint (pemutil.Fingerprint) of the first certificate of PEM b.
func Fingerprint(tb testing.TB, b []byte) string {
	tb.Helper()
	certs, err := pemutil.ParseCertificates(b, pemutil.Limits{})
	if err != nil || len(certs) == 0 {
		tb.Fatalf("not a certificate: %v", err)
	}
	return pemutil.Fingerprint(certs[0])
}
