// Package tlsprobe makes the TLS handshake an Elasticsearch remote cluster client makes with a
// remote cluster server (proxy address, server name as SNI) and judges what the server
// presents against the CA bundle the client trusts. The agent probes every link with it
// periodically, from inside the cluster; agentctl doctor runs it from the operator's machine.
// Both name the same failing step: one place for the code, so the two views agree.
package tlsprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// Steps of a probe, in order; Result.Step is the one that failed, or StepOK.
const (
	// StepDial: the TCP connection to the address.
	StepDial = "dial"
	// StepHandshake: the TLS handshake.
	StepHandshake = "handshake"
	// StepTrust: the presented certificate chains to a CA of the bundle, and is valid now.
	StepTrust = "trust"
	// StepServerName: the server name is among the certificate's SANs.
	StepServerName = "server-name"
	// StepOK: every step passed.
	StepOK = "ok"
)

// Target is what to probe: the address and server name Elasticsearch uses, and the CAs it
// trusts for the remote cluster client.
type Target struct {
	Address    string
	ServerName string
	CAs        []*x509.Certificate
}

// Result is a probe's verdict.
type Result struct {
	// Step is the first step that failed, StepOK when none did.
	Step string
	// Err says why Step failed.
	Err error
	// Chain is what the server presented, leaf first (nil if the handshake failed).
	Chain []*x509.Certificate
	// Duration is the TCP connect plus the TLS handshake.
	Duration time.Duration
}

// OK reports whether every step passed.
func (r Result) OK() bool { return r.Step == StepOK }

// Probe connects to t.Address, handshakes sending t.ServerName, and checks the chain against
// t.CAs at now and the server name against its SANs. It sends nothing after the handshake.
func Probe(ctx context.Context, t Target, timeout time.Duration, now time.Time) Result {
	start := time.Now()
	chain, err := Handshake(ctx, t.Address, t.ServerName, timeout)
	r := Result{Chain: chain, Duration: time.Since(start)}
	var de *DialError
	switch {
	case errors.As(err, &de):
		r.Step, r.Err = StepDial, de.Err
		return r
	case err != nil:
		r.Step, r.Err = StepHandshake, err
		return r
	}
	if len(t.CAs) == 0 {
		r.Step, r.Err = StepTrust, errors.New("no CA to verify the certificate with")
		return r
	}
	if err := VerifyChain(chain, t.CAs, now); err != nil {
		r.Step, r.Err = StepTrust, err
		return r
	}
	if t.ServerName != "" {
		if err := chain[0].VerifyHostname(t.ServerName); err != nil {
			r.Step, r.Err = StepServerName, err
			return r
		}
	}
	r.Step = StepOK
	return r
}

// DialError is a failure to open the TCP connection (before any TLS).
type DialError struct{ Err error }

func (e *DialError) Error() string { return "failed to connect: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// DialTCP checks that addr accepts TCP connections.
func DialTCP(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Handshake performs a TLS handshake with addr, sending serverName as SNI as Elasticsearch
// does, and returns the chain the server presents without judging it: VerifyChain and the
// server name check do, against what Elasticsearch trusts, to name the one that fails. A
// failure to connect is a *DialError.
func Handshake(ctx context.Context, addr, serverName string, timeout time.Duration) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Err: err}
	}
	conn := tls.Client(raw, &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		// Verification is the point of the probe and is done on the returned chain, against the
		// remote cluster client's own CA bundle; nothing is sent on this connection.
		InsecureSkipVerify: true, //nolint:gosec // the chain is verified by the caller
	})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	chain := conn.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, fmt.Errorf("the server presented no certificate")
	}
	return chain, nil
}

// VerifyChain checks chain (leaf first) against roots at now, without a host name: the server
// name is a separate check.
func VerifyChain(chain []*x509.Certificate, roots []*x509.Certificate, now time.Time) error {
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
