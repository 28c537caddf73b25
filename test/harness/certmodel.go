package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// CertificateModel makes an export use the certificate security model (no access, no API keys).
func CertificateModel(exp *v1alpha1.ClusterExport) {
	exp.Spec.Model = v1alpha1.SecurityModelCertificate
	exp.Spec.Access = nil
	exp.Spec.APIKey = nil
}

// Fingerprints returns the SHA-256 fingerprints of a PEM bundle's certificates, in order.
func Fingerprints(bundle []byte) ([]string, error) {
	certs, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = pemutil.Fingerprint(c)
	}
	return out, nil
}

// TransportCAs returns the fingerprints in an Elasticsearch's <es>-es-transport-certs-public
// ca.crt, as ECK wrote it: its own transport CA first, then the CAs of the ConfigMap named by
// spec.transport.tls.certificateAuthorities.
func (c *Cluster) TransportCAs(ctx context.Context, ns, es string) ([]string, error) {
	s, err := c.Env.Kube.CoreV1().Secrets(ns).Get(ctx, es+"-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return Fingerprints(s.Data["ca.crt"])
}

// ConfigMapCAs returns a ConfigMap and the fingerprints in its ca.crt; nil and no error when the
// ConfigMap does not exist.
func (c *Cluster) ConfigMapCAs(ctx context.Context, ns, name string) (*corev1.ConfigMap, []string, error) {
	cm, err := c.Env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if cm.Data["ca.crt"] == "" {
		return cm, nil, nil
	}
	fps, err := Fingerprints([]byte(cm.Data["ca.crt"]))
	return cm, fps, err
}

// WaitClusterExport polls a ClusterExport until ok accepts it.
func (c *Cluster) WaitClusterExport(ctx context.Context, ns, name string, within time.Duration, ok func(*v1alpha1.ClusterExport) bool) (*v1alpha1.ClusterExport, error) {
	deadline := time.Now().Add(within)
	var last *v1alpha1.ClusterExport
	for {
		exp, err := c.CRDs.ClusterExports().Get(ctx, ns, name)
		if err == nil {
			last = exp
			if ok(exp) {
				return exp, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("ClusterExport %s/%s in %s: condition not met within %s; status: %s", ns, name, c.Name, within, DescribeConditions(last))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// UpdateClusterExport changes a ClusterExport, retrying on conflicts with the agent's writes.
func (c *Cluster) UpdateClusterExport(ctx context.Context, ns, name string, mutate func(*v1alpha1.ClusterExport)) error {
	for {
		exp, err := c.CRDs.ClusterExports().Get(ctx, ns, name)
		if err != nil {
			return err
		}
		mutate(exp)
		_, err = c.CRDs.ClusterExports().Update(ctx, exp)
		if !apierrors.IsConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Events returns the Events about the named object in ns with the given reason.
func (c *Cluster) Events(ctx context.Context, ns, name, reason string) ([]corev1.Event, error) {
	list, err := c.Env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out, nil
}

// NewUserCA returns a self-signed CA certificate as PEM, valid for a year: a CA a user trusts on
// the transport port for reasons of their own.
func NewUserCA(cn string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("failed to create a CA: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
