package pod

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// remoteResult is the outcome of the last connection attempt for an alias.
type remoteResult struct {
	connected bool
	err       string
	at        time.Time
}

// remoteStatus feeds GET /_remote/info.
func (p *Pod) remoteStatus(alias string) esim.RemoteStatus {
	p.mu.Lock()
	r := p.remote[alias]
	_, hasCreds := p.keystore["cluster.remote."+alias+".credentials"]
	p.mu.Unlock()
	st := esim.RemoteStatus{Connected: r.connected, HasCredentials: hasCreds}
	if r.connected {
		st.NumSocketsConnected = 1
	}
	return st
}

// RemoteError returns why the last connection attempt for alias failed ("" when connected), the
// text ES would log on the local side.
func (p *Pod) RemoteError(alias string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remote[alias].err
}

// checkRemotes dials every configured remote once, side by side (at most MaxDialsPerCheck of
// them when set: see Options).
func (p *Pod) checkRemotes(ctx context.Context, now time.Time) {
	remotes := p.node.RemoteClusters()
	p.mu.Lock()
	spec := p.running
	prev := p.remote
	p.mu.Unlock()
	dial := dueRemotes(remotes, prev, p.opts.MaxDialsPerCheck)
	results := make([]remoteResult, len(remotes))
	var wg sync.WaitGroup
	for i, rc := range remotes {
		if !dial[i] {
			results[i] = prev[rc.Alias]
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			err := p.connect(cctx, rc, spec, now)
			results[i] = remoteResult{connected: err == nil, at: now}
			if err != nil {
				results[i].err = err.Error()
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[string]remoteResult{}
	for i, rc := range remotes {
		prev := p.remote[rc.Alias]
		if prev.connected != results[i].connected {
			p.log.Info("remote cluster connection changed", "alias", rc.Alias, "connected", results[i].connected, "reason", results[i].err)
		}
		next[rc.Alias] = results[i]
	}
	p.remote = next
}

// dueRemotes says which remotes a check dials: all of them, or with a cap max > 0 the max whose
// last result is oldest (never dialled first).
func dueRemotes(remotes []esim.RemoteClusterSettings, prev map[string]remoteResult, max int) []bool {
	dial := make([]bool, len(remotes))
	for i := range dial {
		dial[i] = true
	}
	if max <= 0 || len(remotes) <= max {
		return dial
	}
	order := make([]int, len(remotes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return prev[remotes[order[a]].Alias].at.Before(prev[remotes[order[b]].Alias].at)
	})
	for _, i := range order[max:] {
		dial[i] = false
	}
	return dial
}

// connect opens one remote cluster connection as ES does in proxy mode and authenticates it.
func (p *Pod) connect(ctx context.Context, rc esim.RemoteClusterSettings, spec podSpec, now time.Time) error {
	if rc.Mode != "proxy" {
		// Sniff mode needs the remote nodes' publish addresses, which are not reachable across
		// environments; esim does not model it.
		return errors.New("sniff mode is not simulated")
	}
	host, port, err := net.SplitHostPort(rc.ProxyAddress)
	if err != nil {
		return fmt.Errorf("invalid proxy address [%s]: %w", rc.ProxyAddress, err)
	}
	serverName := rc.ServerName
	if serverName == "" {
		serverName = host
	}
	cfg, req, err := p.dialProfile(rc, spec, serverName, now)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.opts.Resolve(host), port))
	if err != nil {
		return fmt.Errorf("ConnectTransportException [%s] connect_exception: %w", rc.ProxyAddress, err)
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("failed to establish trust with server at [%s]: %w", rc.ProxyAddress, err)
	}
	if err := writeMessage(conn, req); err != nil {
		return describeReadError(rc.ProxyAddress, err)
	}
	var resp wireResponse
	if err := readMessage(conn, &resp); err != nil {
		return describeReadError(rc.ProxyAddress, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}

// clientTLS builds the remote cluster client's TLS configuration from the effective settings
// xpack.security.remote_cluster_client.ssl.*, reading the CA files through the pod's mounts.
func (p *Pod) clientTLS(spec podSpec, serverName string, now time.Time) (*tls.Config, error) {
	cfg := spec.Config
	if !cfg.Bool("xpack.security.remote_cluster_client.ssl.enabled", true) {
		return nil, errors.New("remote cluster client TLS is disabled, the remote cluster server requires TLS")
	}
	var roots *x509.CertPool
	if cas := cfg.List("xpack.security.remote_cluster_client.ssl.certificate_authorities"); len(cas) > 0 {
		roots = x509.NewCertPool()
		fs := files{view: p.view, mounts: spec.Mounts, now: now}
		for _, path := range cas {
			data, err := fs.read(path)
			if err != nil {
				return nil, err
			}
			certs, err := parseBundle(data)
			if err != nil {
				return nil, fmt.Errorf("failed to load CA file [%s]: %w", path, err)
			}
			for _, c := range certs {
				roots.AddCert(c)
			}
		}
	} else {
		// Unset: ES uses the JDK's default trust store, which holds no private CA.
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
	}
	mode := cfg.String("xpack.security.remote_cluster_client.ssl.verification_mode")
	tc := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}
	switch mode {
	case "", "full":
	case "certificate", "none":
		// Modelling ES's verification_mode: the chain (certificate) or nothing (none) is checked.
		tc.InsecureSkipVerify = true
		if mode == "certificate" {
			tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				return verifyChain(raw, roots)
			}
		}
	default:
		return nil, fmt.Errorf("unknown verification_mode [%s]", mode)
	}
	return tc, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("no server certificate")
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
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}
