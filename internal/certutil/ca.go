package certutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"time"
)

// NewCA creates a self-signed ECDSA P-256 CA valid from now (backdated) for validity, that
// issues only leaves (path length zero), with Organization "ecklink" and commonName. what names
// the CA in errors, e.g. "signing CA"; usage adds to KeyUsageCertSign|KeyUsageCRLSign.
func NewCA(what, commonName string, now time.Time, validity time.Duration, usage x509.KeyUsage) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate %s key: %w", what, err)
	}
	serial, err := SerialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"ecklink"}, CommonName: commonName},
		NotBefore:             now.Add(-Backdate(validity)),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create %s certificate: %w", what, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to parse %s certificate: %w", what, err)
	}
	return cert, key, nil
}
