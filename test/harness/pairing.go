package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// KubeconfigList returns a KUBECONFIG value listing every environment's admin kubeconfig; each
// has one context named after its environment, so kubectl-like tools see them merged.
func (w *World) KubeconfigList() string {
	var names []string
	for n := range w.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	var paths []string
	for _, n := range names {
		paths = append(paths, w.Clusters[n].Env.AdminKubeconfig)
	}
	return strings.Join(paths, string(os.PathListSeparator))
}

// SetElasticsearchEndpoint points the agent at url for Elasticsearch ns/name (the agent reloads
// its config file); a dead url cuts the agent off from that Elasticsearch.
func (c *Cluster) SetElasticsearchEndpoint(ns, name, url string) error {
	c.mu.Lock()
	c.endpoints[ns+"/"+name] = url
	c.mu.Unlock()
	return c.writeConfig()
}

// ExtraAgent returns an agent process of this environment's cluster that is not part of the
// World (e.g. a second agent with its own CA); args are added to the cluster's kubeconfig. The
// caller starts and stops it.
func (c *Cluster) ExtraAgent(name string, args ...string) *Agent {
	base := []string{"--kubeconfig", c.Env.AdminKubeconfig, "--log-level", "debug", "--metrics-address", "0"}
	return &Agent{Bin: c.world.opts.AgentBinary, Args: append(base, args...), LogPath: filepath.Join(c.world.Dir, c.Name, name+".log")}
}

// AgentLeaf issues a client certificate for env from the agent CA kept in the cluster's Secret,
// as the agent itself would: a test can thus act as that agent (e.g. after it was unpaired).
func (c *Cluster) AgentLeaf(ctx context.Context, env string) (*tls.Certificate, error) {
	sec, err := c.Env.Kube.CoreV1().Secrets(AgentNamespace).Get(ctx, identity.SecretName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to read the agent CA of %s: %w", c.Name, err)
	}
	certs, err := pemutil.ParseCertificates(sec.Data[identity.KeyCACert], pemutil.Limits{})
	if err != nil {
		return nil, err
	}
	key, err := pemutil.ParsePrivateKey(sec.Data[identity.KeyCAKey])
	if err != nil {
		return nil, err
	}
	return IssueLeaf(certs[0], key, env)
}

// NewAgentCA returns a fresh self-signed agent CA, as an unpaired agent would hold.
func NewAgentCA(env string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "unpaired agent CA " + env},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// IssueLeaf issues an agent certificate for env signed by ca.
func IssueLeaf(ca *x509.Certificate, caKey any, env string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: env},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}, URIs: []*url.URL{identity.EnvironmentURI(env)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to issue leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ErrRefused means an agent refused a client certificate during the TLS handshake.
var ErrRefused = errors.New("the agent refused the client certificate")

// TryClientCertificate connects to an agent's peer port with cert and reports whether the agent
// accepted it: nil when the handshake completed and the server waited for the HTTP/2 preface,
// ErrRefused (wrapping the TLS alert) when the server refused the certificate. With TLS 1.3 the
// server's verdict arrives after the client finished its handshake, so it is read.
func TryClientCertificate(addr string, cert *tls.Certificate) error {
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
		Certificates: []tls.Certificate{*cert},
		// The server is not what is tested here.
		InsecureSkipVerify: true, //nolint:gosec // test client
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil, errors.As(err, &ne) && ne.Timeout():
		return nil // the server sent its settings or waits for ours: the handshake stood
	case strings.Contains(err.Error(), "tls:"):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	default:
		return fmt.Errorf("failed to read from %s: %w", addr, err)
	}
}
