package pod

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// The transport port (the 9300 role) and the certificate security model. A pod listens there with
// its transport certificate and requires a client certificate verified against its transport
// trust: the files of xpack.security.transport.ssl.certificate_authorities (ECK:
// transport-certs/ca.crt, i.e. its own CA followed by the CAs of the ConfigMap named by
// spec.transport.tls.certificateAuthorities, and transport-remote-certs/ca.crt), read through the
// pod's mounts at each handshake, so a CA added to the ConfigMap counts once ECK copied it and the
// kubelet updated the file. A remote cluster alias without keystore credentials is dialled with
// the same transport profile (the transport certificate as client certificate, the transport CAs,
// verification_mode certificate as ECK sets it); an alias with credentials with the remote
// cluster client profile of the API-key model.

const (
	// TransportHandshakeAction is the first request on a transport connection.
	TransportHandshakeAction = "internal:transport/handshake"

	keyTransportCAs        = "xpack.security.transport.ssl.certificate_authorities"
	keyTransportVerify     = "xpack.security.transport.ssl.verification_mode"
	keyTransportClientAuth = "xpack.security.transport.ssl.client_authentication"
	keyTransportEnabled    = "xpack.security.transport.ssl.enabled"
)

// TransportAddress is the host:port of the transport port.
func (p *Pod) TransportAddress() string { return p.transportLn.Addr().String() }

// listenTransport serves the transport port.
func (p *Pod) listenTransport(ctx context.Context) error {
	ln, err := listenOn(p.opts.IP, p.opts.TransportPort)
	if err != nil {
		return err
	}
	p.transportLn = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serveTransport(ctx)
	}()
	return nil
}

func (p *Pod) serveTransport(ctx context.Context) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: p.transportServerTLS}
	for {
		raw, err := p.transportLn.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go p.handleTransport(tls.Server(raw, cfg))
	}
}

// transportServerTLS is the transport port's TLS configuration for one handshake, from the
// running configuration and the mounted files as they are now.
func (p *Pod) transportServerTLS(*tls.ClientHelloInfo) (*tls.Config, error) {
	p.mu.Lock()
	spec := p.running
	p.mu.Unlock()
	cfg := spec.Config
	if !cfg.Bool(keyTransportEnabled, false) {
		return nil, errors.New("transport TLS is disabled, which esim does not simulate")
	}
	roots, err := p.caPool(spec, keyTransportCAs, time.Now())
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{GetCertificate: p.remoteClusterCertificate, MinVersion: tls.VersionTLS12}
	switch mode := cfg.String(keyTransportClientAuth); mode {
	case "", "required":
		tc.ClientAuth = tls.RequireAnyClientCert
	case "optional":
		tc.ClientAuth = tls.RequestClientCert
	case "none":
		tc.ClientAuth = tls.NoClientCert
	default:
		return nil, fmt.Errorf("unknown client_authentication [%s]", mode)
	}
	verify := cfg.String(keyTransportVerify)
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 || verify == "none" {
			return nil
		}
		// ES checks the client's chain only; hostname verification applies to servers.
		return verifyChainFor(raw, roots, x509.ExtKeyUsageClientAuth)
	}
	return tc, nil
}

// handleTransport answers a transport connection: a certificate-model remote cluster (TLS
// passed, so the peer's certificate is trusted) is served; the remote cluster handshake of an
// API-key client belongs to the remote cluster port.
func (p *Pod) handleTransport(c *tls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		p.log.Debug("transport tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		return
	}
	var req wireRequest
	if err := readMessage(c, &req); err != nil {
		return
	}
	resp := wireResponse{ClusterName: p.opts.Name, Version: p.version()}
	switch req.Action {
	case TransportHandshakeAction:
	case HandshakeAction:
		resp.Error = &wireError{Type: "illegal_argument_exception",
			Reason: "remote cluster handshake action requires channel profile to be [_remote_cluster], but got [default]"}
	default:
		resp.Error = &wireError{Type: "action_not_found_transport_exception", Reason: "No handler for action [" + req.Action + "]"}
	}
	_ = writeMessage(c, resp)
}

// dialProfile is how the pod dials a remote cluster alias: with the remote cluster client
// profile and the API key when the keystore holds cluster.remote.<alias>.credentials, else with
// the transport profile.
func (p *Pod) dialProfile(rc esim.RemoteClusterSettings, spec podSpec, serverName string, now time.Time) (*tls.Config, wireRequest, error) {
	req := wireRequest{ClusterName: p.opts.Name, Version: spec.Version, Headers: map[string]string{}}
	if creds, ok := p.credentials(rc.Alias); ok {
		if !p.crossClusterAllowed() {
			// The client checks the feature before it sends anything with credentials.
			return nil, req, esim.ComplianceError(esim.FeatureAdvancedRemoteClusterSecurity)
		}
		req.Action = HandshakeAction
		req.Headers[CredentialsHeader] = "ApiKey " + creds
		req.Headers[esim.CrossClusterSubjectInfoHeader] = subjectInfo(p.opts.Name)
		p.signRequest(rc, spec, now, &req)
		cfg, err := p.clientTLS(spec, serverName, now)
		return cfg, req, err
	}
	req.Action = TransportHandshakeAction
	cfg, err := p.transportClientTLS(spec, serverName, now)
	return cfg, req, err
}

// transportClientTLS is the transport profile as a client: the pod's transport certificate,
// trust from xpack.security.transport.ssl.certificate_authorities and its verification_mode.
func (p *Pod) transportClientTLS(spec podSpec, serverName string, now time.Time) (*tls.Config, error) {
	cfg := spec.Config
	if !cfg.Bool(keyTransportEnabled, false) {
		return nil, errors.New("transport TLS is disabled, which esim does not simulate")
	}
	roots, err := p.caPool(spec, keyTransportCAs, now)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return p.remoteClusterCertificate(nil)
		},
	}
	switch mode := cfg.String(keyTransportVerify); mode {
	case "full", "":
	case "certificate":
		// Verified in VerifyPeerCertificate: the chain, without the hostname, as ES does.
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChainFor(raw, roots, x509.ExtKeyUsageServerAuth)
		}
	case "none":
		tc.InsecureSkipVerify = true
	default:
		return nil, fmt.Errorf("unknown verification_mode [%s]", mode)
	}
	return tc, nil
}

// caPool loads the CA files of a certificate_authorities setting through the pod's mounts.
func (p *Pod) caPool(spec podSpec, key string, now time.Time) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	fs := files{view: p.view, mounts: spec.Mounts, now: now}
	for _, path := range spec.Config.List(key) {
		data, err := fs.read(path)
		if err != nil {
			return nil, err
		}
		certs, err := parseBundle(data)
		if err != nil {
			return nil, fmt.Errorf("failed to load CA file [%s]: %w", path, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// verifyChainFor verifies a peer's chain against roots for a key usage, without a hostname.
func verifyChainFor(raw [][]byte, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(raw) == 0 {
		return errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, r := range raw[1:] {
		if c, err := x509.ParseCertificate(r); err == nil {
			inter.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// describeReadError names a TLS alert the remote sent after the handshake: with TLS 1.3 a server
// that refuses the client's certificate says so only then.
func describeReadError(addr string, err error) error {
	if err != nil && strings.Contains(err.Error(), "remote error: tls:") {
		return fmt.Errorf("failed to establish trust with server at [%s]: the server did not accept this node's certificate: %w", addr, err)
	}
	return err
}
