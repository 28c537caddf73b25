package ctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// certInfo describes a certificate for diagnosis; never key material.
type certInfo struct {
	Subject          string    `json:"subject"`
	Issuer           string    `json:"issuer"`
	DNSNames         []string  `json:"dnsNames,omitempty"`
	IPAddresses      []string  `json:"ipAddresses,omitempty"`
	NotBefore        time.Time `json:"notBefore"`
	NotAfter         time.Time `json:"notAfter"`
	ExpiresInSeconds int64     `json:"expiresInSeconds"`
	Fingerprint      string    `json:"fingerprint"`
}

func describeCert(c *x509.Certificate, now time.Time) *certInfo {
	ci := &certInfo{Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: c.DNSNames, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		ExpiresInSeconds: seconds(now, c.NotAfter), Fingerprint: pemutil.Fingerprint(c)}
	for _, ip := range c.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	return ci
}

// sans renders a certificate's subject alternative names.
func (c *certInfo) sans() string {
	var parts []string
	for _, d := range c.DNSNames {
		parts = append(parts, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		parts = append(parts, "IP:"+ip)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// dialTCP checks that addr accepts TCP connections.
func dialTCP(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// presentedChain performs a TLS handshake with addr, sending serverName as SNI as Elasticsearch
// does, and returns the chain the server presents without judging it: the checks compare it
// with the CA bundle and server name Elasticsearch uses, to name the one that fails.
func presentedChain(ctx context.Context, addr, serverName string, timeout time.Duration) ([]*x509.Certificate, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		// Verification is the point of the diagnosis and is done on the returned chain, against
		// the remote cluster client's own CA bundle; nothing is sent on this connection.
		InsecureSkipVerify: true, //nolint:gosec // the chain is verified by the caller
	}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("the server presented no certificate")
	}
	return chain, nil
}

// verifyChain checks chain (leaf first) against roots at now, without a host name: the server
// name is a separate check.
func verifyChain(chain []*x509.Certificate, roots []*x509.Certificate, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}
