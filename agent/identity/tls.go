package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TrustSource tells which agent CAs to trust for each paired environment. The Peer objects
// implement it in the agent; tests use a map.
type TrustSource interface {
	// PeerCAs returns the CA certificates trusted for environment, none if it is not paired.
	PeerCAs(environment string) []*x509.Certificate
	// Environments lists the paired environments.
	Environments() []string
}

// ServerTLSConfig returns the TLS configuration of the gRPC server. A client must present a
// certificate that names exactly one environment in its URI SAN, chains to that environment's
// CAs in trust (looked up per handshake, so changes apply at once), is valid now and allows
// client authentication. Session tickets are off so that every connection is verified afresh.
func (i *Identity) ServerTLSConfig(trust TrustSource) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: i.GetCertificate,
		// The CA to verify against depends on the environment the certificate claims, so Go's
		// own verification (one static pool) cannot do it; VerifyConnection does it all.
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		Time:                   i.cfg.Clock.Now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := i.VerifyPeer(cs.PeerCertificates, "", x509.ExtKeyUsageClientAuth, trust)
			return err
		},
	}
}

// ClientTLSConfig returns the TLS configuration for dialing the agent of expectedEnv. The server
// must present a certificate for expectedEnv that chains to expectedEnv's CAs in trust, is valid
// now and allows server authentication. Host names are not checked: the environment in the URI
// SAN is the identity, so peers can sit behind any load balancer name.
func (i *Identity) ClientTLSConfig(trust TrustSource, expectedEnv string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: i.GetClientCertificate,
		Time:                 i.cfg.Clock.Now,
		// Go's verification would check the host name against a static pool; VerifyConnection
		// below performs the complete verification instead (chain, validity, usage, identity).
		InsecureSkipVerify: true, //nolint:gosec // full verification in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := i.VerifyPeer(cs.PeerCertificates, expectedEnv, x509.ExtKeyUsageServerAuth, trust)
			return err
		},
	}
}

// VerifyPeer verifies a peer's certificate chain (leaf first, as presented) and returns the
// environment it names. When expectedEnv is not empty the certificate must name it. The chain
// must lead to one of trust.PeerCAs(environment), with usage allowed for the leaf.
func (i *Identity) VerifyPeer(chain []*x509.Certificate, expectedEnv string, usage x509.ExtKeyUsage, trust TrustSource) (string, error) {
	if len(chain) == 0 {
		return "", fmt.Errorf("peer presented no certificate")
	}
	leaf := chain[0]
	env, err := EnvironmentFromCertificate(leaf)
	if err != nil {
		return "", err
	}
	if expectedEnv != "" && env != expectedEnv {
		return "", fmt.Errorf("peer certificate is for environment %q, want %q", env, expectedEnv)
	}
	if leaf.IsCA {
		return "", fmt.Errorf("peer certificate for environment %q is a CA certificate, want a leaf", env)
	}
	cas := trust.PeerCAs(env)
	if len(cas) == 0 {
		return "", fmt.Errorf("environment %q is not a paired peer", env)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   i.cfg.Clock.Now(),
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return "", fmt.Errorf("failed to verify certificate of environment %q against its %d trusted CA(s): %w", env, len(cas), err)
	}
	return env, nil
}

// EnvironmentFromCertificate returns the environment named by cert's single
// ecklink://environment/<env> URI SAN.
func EnvironmentFromCertificate(cert *x509.Certificate) (string, error) {
	env := ""
	for _, u := range cert.URIs {
		if u.Scheme != "ecklink" {
			continue
		}
		if u.Host != "environment" || !strings.HasPrefix(u.Path, "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" || env != "" {
			return "", fmt.Errorf("certificate must carry exactly one URI SAN ecklink://environment/<env>")
		}
		env = strings.TrimPrefix(u.Path, "/")
	}
	if env == "" {
		return "", fmt.Errorf("certificate has no URI SAN ecklink://environment/<env>")
	}
	if err := ValidateEnvironment(env); err != nil {
		return "", fmt.Errorf("certificate URI SAN: %w", err)
	}
	return env, nil
}

// PeerEnvironment returns the environment of the client of a gRPC call, read from the
// certificate verified during the handshake. It is only meaningful on servers whose credentials
// come from ServerTLSConfig, which refuses handshakes that fail VerifyPeer.
func PeerEnvironment(ctx context.Context) (string, error) {
	certs, err := peerCertificates(ctx)
	if err != nil {
		return "", err
	}
	return EnvironmentFromCertificate(certs[0])
}

// peerCertificates returns the certificate chain the client of a gRPC call presented: at least
// one certificate, or an error.
func peerCertificates(ctx context.Context) ([]*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("no peer information in context")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, fmt.Errorf("connection is not TLS")
	}
	if len(info.State.PeerCertificates) == 0 {
		return nil, fmt.Errorf("client presented no certificate")
	}
	return info.State.PeerCertificates, nil
}
