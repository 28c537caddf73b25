package pod

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// listen serves HTTPS (ECK's HTTP certificate) and the remote cluster server.
func (p *Pod) listen(ctx context.Context) error {
	var err error
	if p.httpLn, err = listenOn(p.opts.IP, p.opts.HTTPPort); err != nil {
		return err
	}
	if p.rcsLn, err = listenOn(p.opts.IP, p.opts.RemoteClusterPort); err != nil {
		return err
	}
	p.startHTTP(ctx, p.httpLn) // see faults.go: tests may fail or close it for a while
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serveRemoteCluster(ctx)
	}()
	return nil
}

// serveRemoteCluster accepts remote cluster connections: TLS with the transport certificate
// (client certificates are not required in the API-key model), then the handshake request,
// authenticated with the cross-cluster API key it carries.
func (p *Pod) serveRemoteCluster(ctx context.Context) {
	cfg := &tls.Config{GetCertificate: p.remoteClusterCertificate, MinVersion: tls.VersionTLS12}
	for {
		raw, err := p.rcsLn.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go p.handleRemoteCluster(tls.Server(raw, cfg))
	}
}

func (p *Pod) handleRemoteCluster(c *tls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		// ES logs "client did not trust this server's certificate" for a client that refused ours.
		p.log.Debug("remote cluster tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		return
	}
	var req wireRequest
	if err := readMessage(c, &req); err != nil {
		return
	}
	resp := wireResponse{ClusterName: p.opts.Name, Version: p.version()}
	switch {
	case req.Headers[CredentialsHeader] == "":
		// Checked first: a certificate-model client (no credentials) dialling this port gets it.
		resp.Error = &wireError{Type: "security_exception", Reason: "Cross cluster requests through the dedicated remote cluster server port require transport header [" +
			CredentialsHeader + "] but none found. Make sure you have configured remote cluster credentials in the cluster settings."}
	case !p.crossClusterAllowed():
		// The server's transport filter checks the feature before it authenticates.
		resp.Error = &wireError{Type: "security_exception", Reason: esim.ComplianceError(esim.FeatureAdvancedRemoteClusterSecurity).Reason}
	case req.Action != HandshakeAction:
		resp.Error = &wireError{Type: "security_exception", Reason: "action [" + req.Action + "] is unauthorized on the remote cluster port"}
	default:
		p.mu.Lock()
		spec := p.running
		p.mu.Unlock()
		h := esim.CrossClusterHeaders{Credentials: req.Headers[CredentialsHeader],
			SubjectInfo: req.Headers[esim.CrossClusterSubjectInfoHeader], Signature: req.Headers[esim.CrossClusterSignatureHeader]}
		if _, err := p.node.AuthenticateCrossClusterRequest(h, p.signingTrust(spec, time.Now())); err != nil {
			resp.Error = &wireError{Type: "security_exception", Reason: "unable to authenticate user for action [" + HandshakeAction + "]: " + err.Error()}
			p.log.Debug("remote cluster authentication failed", "reason", redactReason(err.Error()))
		}
	}
	_ = writeMessage(c, resp)
}

func (p *Pod) version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running.Version
}

// redactReason keeps log lines free of credentials: ES reasons name key ids, never secrets, but
// be safe against an echo of the header.
func redactReason(s string) string {
	if i := strings.Index(s, "ApiKey "); i >= 0 {
		return s[:i] + "ApiKey [redacted]"
	}
	return s
}

// crossClusterAllowed reports whether the cluster's license allows the API-key model; a pod
// whose node has not started checks nothing (it cannot dial or serve yet).
func (p *Pod) crossClusterAllowed() bool {
	return p.node == nil || p.node.CrossClusterAllowed()
}
