package pemutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// intermediate returns a CA certificate signed by issuer's key.
func intermediate(t *testing.T, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "intermediate"},
		NotBefore: issuer.NotBefore, NotAfter: issuer.NotAfter,
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// forged returns a CA whose issuer is its subject but whose signature is another key's.
func forged(t *testing.T) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "forged"},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), other)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateSelfSignedCA(t *testing.T) {
	root, rootKey := mustCert(t, certOpts{cn: "root", isCA: true, keyUsage: x509.KeyUsageCertSign})
	other, _ := mustCert(t, certOpts{cn: "other", isCA: true})
	leaf, _ := mustCert(t, certOpts{cn: "leaf"})
	tests := []struct {
		name    string
		bundle  []byte
		wantErr string
	}{
		{name: "one self-signed CA", bundle: pemOf(root)},
		{name: "two CAs", bundle: pemOf(root, other), wantErr: "holds 2 certificates, want exactly one self-signed CA certificate"},
		{name: "intermediate", bundle: pemOf(intermediate(t, root, rootKey)), wantErr: "certificate 1 (CN=intermediate): not self-signed (issued by CN=root)"},
		{name: "issuer is subject, another key signed", bundle: pemOf(forged(t)), wantErr: "certificate 1 (CN=forged): not self-signed (its own key does not verify its signature)"},
		{name: "leaf", bundle: pemOf(leaf), wantErr: "certificate 1 (CN=leaf): not a CA"},
		{name: "empty", bundle: nil, wantErr: "no PEM certificate found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ValidateSelfSignedCA(tt.bundle, fixedNow, DefaultLimits)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("ValidateSelfSignedCA() = %v, %v; want the CA", c, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateSelfSignedCA() error = %v, want prefix %q", err, tt.wantErr)
			}
		})
	}
}
