package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
)

// ServerTLSConfigWithPairing is ServerTLSConfig for a server that also answers the Pair RPC on
// the same port, so that an agent keeps one advertised endpoint. A client certificate is
// requested but not required: a joining agent is not trusted by anyone yet and authenticates
// with the token secret instead, after it checked this server against the token's pin. A
// certificate that is presented must still pass VerifyPeer, exactly as with ServerTLSConfig, so a
// client of an unpaired CA is refused during the handshake. A connection without a certificate
// is anonymous: the agent's peering.Port hands it to a server that answers only Pair, with limits of
// its own, and AuthenticatePeer refuses it for every other RPC (the same split as SPIRE's
// server, where node attestation runs before the agent holds a certificate).
func (i *Identity) ServerTLSConfigWithPairing(trust TrustSource) *tls.Config {
	c := i.ServerTLSConfig(trust)
	c.ClientAuth = tls.RequestClientCert
	strict := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		return strict(cs)
	}
	return c
}

// AuthenticatePeer returns the environment of the client of a gRPC call after verifying its
// certificate again against the current trust and clock. The handshake verified it already; the
// second check refuses calls on connections opened before the peer was unpaired or before its
// certificate expired, and calls on anonymous connections (see ServerTLSConfigWithPairing).
func (i *Identity) AuthenticatePeer(ctx context.Context, trust TrustSource) (string, error) {
	certs, err := peerCertificates(ctx)
	if err != nil {
		return "", err
	}
	return i.VerifyPeer(certs, "", x509.ExtKeyUsageClientAuth, trust)
}
