package certutil

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, key, err := NewCA("test CA", "ecklink test CA", now, 24*time.Hour, x509.KeyUsageDigitalSignature)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.MaxPathLenZero || cert.Subject.CommonName != "ecklink test CA" || cert.Subject.Organization[0] != "ecklink" {
		t.Errorf("unexpected CA: %+v", cert.Subject)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; cert.KeyUsage != want {
		t.Errorf("key usage %v, want %v", cert.KeyUsage, want)
	}
	if !cert.NotBefore.Equal(now.Add(-5*time.Minute)) || !cert.NotAfter.Equal(now.Add(24*time.Hour)) {
		t.Errorf("validity %s to %s", cert.NotBefore, cert.NotAfter)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
		t.Error("key does not match the certificate")
	}
}
