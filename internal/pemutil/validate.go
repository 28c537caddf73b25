package pemutil

import (
	"crypto/x509"
	"fmt"
	"time"
)

// ValidateCABundle parses bundle and checks that every certificate in it can act as a CA at now:
// basicConstraints CA=true, keyUsage (when present) includes certSign, and now within its
// validity period. It returns the parsed certificates, or the first problem found, naming the
// certificate by position and subject and saying what is expected, e.g.
//
//	certificate 2 (CN=x): not a CA (basicConstraints CA=false)
//	certificate 1 (CN=y): expired at 2026-01-02T03:04:05Z
//	bundle is 10485760 bytes, at most 262144 allowed
//
// Zero-value limits use DefaultLimits.
func ValidateCABundle(bundle []byte, now time.Time, limits Limits) ([]*x509.Certificate, error) {
	certs, err := ParseCertificates(bundle, limits)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		if err := checkCA(c, now); err != nil {
			return nil, fmt.Errorf("certificate %d (%s): %w", i+1, Describe(c), err)
		}
	}
	return certs, nil
}

func checkCA(c *x509.Certificate, now time.Time) error {
	switch {
	case !c.BasicConstraintsValid:
		return fmt.Errorf("not a CA (basicConstraints missing)")
	case !c.IsCA:
		return fmt.Errorf("not a CA (basicConstraints CA=false)")
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("not a CA (keyUsage lacks certSign)")
	case now.After(c.NotAfter):
		return fmt.Errorf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
