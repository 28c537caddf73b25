package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/ecklink/ecklink/internal/certutil"
)

// caPair is an agent CA with its key.
type caPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newCA creates a self-signed ECDSA P-256 agent CA for env.
func newCA(env string, now time.Time, validity time.Duration) (*caPair, error) {
	cert, key, err := certutil.NewCA("CA", "ecklink agent CA "+env+" "+now.UTC().Format("20060102T150405Z"), now, validity, x509.KeyUsageDigitalSignature)
	if err != nil {
		return nil, err
	}
	return &caPair{cert: cert, key: key}, nil
}

// EnvironmentURI returns the URI SAN that names env in agent certificates:
// ecklink://environment/<env>.
func EnvironmentURI(env string) *url.URL {
	return &url.URL{Scheme: "ecklink", Host: "environment", Path: "/" + env}
}

// leaf is an issued leaf certificate with the time it should be renewed.
type leaf struct {
	tls     *tls.Certificate
	renewAt time.Time
}

// issueLeaf issues a certificate for both server and client use, signed by ca.
func issueLeaf(ca *caPair, env string, endpoints []string, now time.Time, validity time.Duration) (*leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate leaf key: %w", err)
	}
	serial, err := certutil.SerialNumber()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !notAfter.After(now) {
		// Renewing would loop: fail, and let the caller back off until a new CA is promoted.
		return nil, fmt.Errorf("failed to issue leaf certificate: the agent CA expired at %s", ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"ecklink"}, CommonName: env},
		NotBefore:    now.Add(-certutil.Backdate(validity)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{EnvironmentURI(env)},
	}
	for _, ep := range endpoints {
		host, _, err := net.SplitHostPort(ep)
		if err != nil {
			continue // validated in Config.Validate
		}
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("failed to create leaf certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse leaf certificate: %w", err)
	}
	return &leaf{
		tls: &tls.Certificate{
			// The issuing CA follows the leaf so that a joining agent, which holds only the
			// CA's SPKI pin from a pairing token, can check the chain before trusting it.
			Certificate: [][]byte{der, ca.cert.Raw},
			PrivateKey:  key,
			Leaf:        cert,
		},
		// From the certificate's NotAfter, which is whole seconds: peers see that one.
		renewAt: now.Add(cert.NotAfter.Sub(now) * 2 / 3),
	}, nil
}
