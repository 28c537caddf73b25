package pemutil

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"
)

// ValidateSelfSignedCA checks that bundle holds exactly one certificate, a CA valid at now (as
// ValidateCABundle checks it) that is self-signed: its issuer is its subject and its own public
// key verifies its signature. It is what may join a transport trust for the certificate security
// model: one root that a peer's nodes chain to, never an intermediate (which would extend the
// trust to whatever its issuer signs) nor a collection of unrelated CAs smuggled in with it.
// Errors say what was found and what is expected, e.g.
//
//	holds 2 certificates, want exactly one self-signed CA certificate
//	certificate 1 (CN=x): not self-signed (issued by CN=y)
func ValidateSelfSignedCA(bundle []byte, now time.Time, limits Limits) (*x509.Certificate, error) {
	certs, err := ValidateCABundle(bundle, now, limits)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("holds %d certificates, want exactly one self-signed CA certificate", len(certs))
	}
	c := certs[0]
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return nil, fmt.Errorf("certificate 1 (%s): not self-signed (issued by %s)", Describe(c), sanitize(c.Issuer.String(), 120))
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		return nil, fmt.Errorf("certificate 1 (%s): not self-signed (its own key does not verify its signature)", Describe(c))
	}
	return c, nil
}
