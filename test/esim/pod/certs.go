package pod

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// certCache holds a certificate derived from some input, rebuilt when the input changes.
type certCache struct {
	mu   sync.Mutex
	hash string
	cert *tls.Certificate
}

func (c *certCache) get(hash string, build func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && c.hash == hash {
		return c.cert, nil
	}
	cert, err := build()
	if err != nil {
		return nil, err
	}
	c.cert, c.hash = cert, hash
	return cert, nil
}

// httpCertificate is ECK's HTTP certificate as mounted in the pod (http-certs/tls.crt, tls.key).
func (p *Pod) httpCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	data, ok := p.view.visible(objectKey("secret", p.opts.Name+"-es-http-certs-internal"), time.Now())
	if !ok {
		return nil, errors.New("http certificate not mounted")
	}
	return p.httpCert.get(hashData(data), func() (*tls.Certificate, error) {
		cert, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
		if err != nil {
			return nil, fmt.Errorf("failed to load http certificate: %w", err)
		}
		return &cert, nil
	})
}

// remoteClusterCertificate is the pod's transport certificate, which ECK uses for the remote
// cluster server too. With no real pods ECK issues none, so esim issues it from ECK's transport CA
// (<es>-es-transport-ca-internal) with ECK's subject and SANs, again whenever the CA changes.
func (p *Pod) remoteClusterCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	data, ok := p.view.visible(objectKey("secret", p.opts.Name+"-es-transport-ca-internal"), time.Now())
	if !ok {
		return nil, errors.New("transport CA not available")
	}
	p.mu.Lock()
	nodeSet, rcs := p.running.NodeSet, p.running.RemoteClusterServer
	p.mu.Unlock()
	return p.rcsCert.get(fmt.Sprintf("%s/%s/%t", hashData(data), nodeSet, rcs), func() (*tls.Certificate, error) {
		return p.issueTransportCert(data["tls.crt"], data["tls.key"], nodeSet, rcs)
	})
}

func (p *Pod) issueTransportCert(caPEM, caKeyPEM []byte, nodeSet string, remoteClusterServer bool) (*tls.Certificate, error) {
	caPair, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load transport CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("failed to parse transport CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	ns, es := p.opts.Namespace, p.opts.Name
	pod := p.podName(nodeSet)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("%s.node.%s.%s.es.local", pod, es, ns), OrganizationalUnit: []string{es}},
		NotBefore:    time.Now().Add(-10 * time.Minute),
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// ECK's SANs (certificates/transport/csr.go buildGeneralNames): the node name, the
		// transport Service (which remote clusters dial in the certificate model), the pod in
		// its headless Service, its IP and loopback; with the remote cluster server also the
		// remote cluster Service and the pod's full name.
		DNSNames: []string{
			fmt.Sprintf("%s.node.%s.%s.es.local", pod, es, ns),
			fmt.Sprintf("%s-es-transport.%s.svc", es, ns),
			fmt.Sprintf("%s.%s-es-%s", pod, es, nodeSet),
		},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if ip := net.ParseIP(p.opts.IP); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	if remoteClusterServer {
		tmpl.DNSNames = append(tmpl.DNSNames,
			fmt.Sprintf("%s-es-remote-cluster.%s.svc", es, ns),
			fmt.Sprintf("%s.%s-es-%s.%s.svc", pod, es, nodeSet, ns))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("failed to issue transport certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: mustParse(der)}, nil
}

func mustParse(der []byte) *x509.Certificate {
	c, _ := x509.ParseCertificate(der)
	return c
}

// parseBundle parses every certificate of a PEM bundle.
func parseBundle(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificates found")
	}
	return out, nil
}
