package pod

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Client returns a go-elasticsearch client for the pod as the elastic user, trusting ECK's HTTP
// CA and checking the certificate against the Service name ECK issued it for.
func (p *Pod) Client(ctx context.Context) (*elasticsearch.Client, error) {
	user, err := p.opts.Kube.CoreV1().Secrets(p.opts.Namespace).Get(ctx, p.opts.Name+"-es-elastic-user", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to read elastic user: %w", err)
	}
	return p.ClientAs("elastic", string(user.Data["elastic"]))
}

// ClientAs is Client for another user of the file realm (e.g. when spec.auth.disableElasticUser
// leaves no elastic user).
func (p *Pod) ClientAs(username, password string) (*elasticsearch.Client, error) {
	ns, name := p.opts.Namespace, p.opts.Name
	serverName := fmt.Sprintf("%s-es-http.%s.svc", name, ns)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// ECK rotates the HTTP CA too (with --ca-cert-validity), so trust is read at each handshake
	// from <es>-es-http-certs-public, as a well-behaved client must.
	tr.TLSClientConfig = &tls.Config{
		ServerName:         serverName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified in VerifyConnection against the current CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			certs, err := p.opts.Kube.CoreV1().Secrets(ns).Get(context.Background(), name+"-es-http-certs-public", metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("failed to read http CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(certs.Data["ca.crt"]) {
				return fmt.Errorf("failed to parse http CA of %s/%s", ns, name)
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: serverName, Roots: pool, Intermediates: inter})
			return err
		},
	}
	c, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: []string{p.HTTPURL()},
		Username:  username,
		Password:  password,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to build client: %w", err)
	}
	return c, nil
}
