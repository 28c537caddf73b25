// Package pemutil parses and checks PEM certificate material, most of it supplied by peers.
//
// Everything here treats its input as hostile: sizes and counts are bounded before parsing, and
// errors name the offending item (its position and subject) and what was expected, but never
// echo the input, so a private key pasted by mistake cannot leak through an error message.
package pemutil

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"unicode"
)

// Limits bound the material accepted from a peer.
type Limits struct {
	// MaxBytes is the largest bundle accepted, in bytes.
	MaxBytes int
	// MaxCertificates is the largest number of certificates accepted in one bundle.
	MaxCertificates int
}

// DefaultLimits fit any real CA bundle (ECK's transport CA bundles hold one to three CAs) with a
// wide margin, while keeping a peer from making us parse megabytes.
var DefaultLimits = Limits{MaxBytes: 256 << 10, MaxCertificates: 32}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxCertificates <= 0 {
		l.MaxCertificates = DefaultLimits.MaxCertificates
	}
	return l
}

// TypeCertificate is the PEM block type of a certificate.
const TypeCertificate = "CERTIFICATE"

// ParseCertificates parses every PEM block of bundle as an X.509 certificate. Text outside PEM
// blocks (comments, as in public CA bundles) is ignored; blocks of any other type, malformed
// blocks, and bundles above the limits are errors. Zero-value limits use DefaultLimits.
func ParseCertificates(bundle []byte, limits Limits) ([]*x509.Certificate, error) {
	limits = limits.withDefaults()
	if len(bundle) > limits.MaxBytes {
		return nil, fmt.Errorf("bundle is %d bytes, at most %d allowed", len(bundle), limits.MaxBytes)
	}
	var certs []*x509.Certificate
	rest := bundle
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if bytes.Contains(rest, []byte("-----BEGIN")) {
				return nil, fmt.Errorf("PEM block %d is malformed", n)
			}
			break
		}
		if block.Type != TypeCertificate {
			return nil, fmt.Errorf("PEM block %d has type %q, want %s", n, sanitize(block.Type, 40), TypeCertificate)
		}
		if len(certs) == limits.MaxCertificates {
			return nil, fmt.Errorf("bundle has more than %d certificates", limits.MaxCertificates)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			// x509 parse errors describe the structure; they may quote a field such as a URI SAN,
			// so the text is bounded and cleaned rather than wrapped.
			return nil, fmt.Errorf("certificate %d: not a valid X.509 certificate: %s", n, sanitize(err.Error(), 160))
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return certs, nil
}

// EncodeBundle returns the PEM encoding of certs, in order.
func EncodeBundle(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: TypeCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// Fingerprint returns the lower-case hex SHA-256 of the certificate's DER encoding.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// SPKIPin returns "sha256:<hex>" of the certificate's SubjectPublicKeyInfo: the pin a pairing
// token carries, stable across re-issuance of a CA with the same key.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Describe names a certificate for messages: "CN=<common name>", or the whole subject when the
// common name is empty. Control characters are dropped and the result is bounded, since the
// subject comes from the peer.
func Describe(cert *x509.Certificate) string {
	if cn := cert.Subject.CommonName; cn != "" {
		return "CN=" + sanitize(cn, 64)
	}
	if s := cert.Subject.String(); s != "" {
		return sanitize(s, 96)
	}
	return "empty subject"
}

// sanitize keeps printable runes and cuts s to max runes.
func sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if !unicode.IsPrint(r) {
			continue
		}
		if n == max {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
