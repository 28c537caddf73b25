package pemutil

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// TypePrivateKey is the PEM block type of a PKCS #8 private key.
const TypePrivateKey = "PRIVATE KEY"

// EncodePrivateKey returns key as a PKCS #8 "PRIVATE KEY" PEM block.
func EncodePrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: TypePrivateKey, Bytes: der}), nil
}

// ParsePrivateKey parses the first PEM block of data as a PKCS #8, SEC 1 (EC) or PKCS #1 (RSA)
// private key. Errors never include key bytes.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM private key found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case TypePrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block 1 has type %q, want %s", sanitize(block.Type, 40), TypePrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// ErrKeyMismatch is ParseKeyPair's error for a private key that is not the certificate's.
var ErrKeyMismatch = errors.New("the key does not match the certificate")

// ParseKeyPair parses certPEM as exactly one certificate and keyPEM as its private key
// (ParsePrivateKey), and checks that the key is the certificate's (ErrKeyMismatch). Errors say
// which of the two failed and never include key bytes.
func ParseKeyPair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	certs, err := ParseCertificates(certPEM, Limits{MaxCertificates: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, ErrKeyMismatch
	}
	return certs[0], key, nil
}
