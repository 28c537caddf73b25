package testbed

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ElasticsearchGVR is ECK's Elasticsearch resource.
var ElasticsearchGVR = schema.GroupVersionResource{Group: "elasticsearch.k8s.elastic.co", Version: "v1", Resource: "elasticsearches"}

// Elasticsearch describes an Elasticsearch resource for a test.
type Elasticsearch struct {
	Namespace, Name string
	// Version of the Elastic Stack, e.g. "9.3.2".
	Version string
	// RemoteClusterServer sets spec.remoteClusterServer.enabled.
	RemoteClusterServer bool
	// Count of the single node set "default"; 1 if zero.
	Count int64
	// Mutate may change the object before it is created.
	Mutate func(obj *unstructured.Unstructured)
}

// CreateElasticsearch creates the namespace and the Elasticsearch resource.
func (e *Environment) CreateElasticsearch(ctx context.Context, es Elasticsearch) (*unstructured.Unstructured, error) {
	if err := e.EnsureNamespace(ctx, es.Namespace); err != nil {
		return nil, err
	}
	if es.Count == 0 {
		es.Count = 1
	}
	spec := map[string]any{
		"version": es.Version,
		"nodeSets": []any{map[string]any{
			"name":  "default",
			"count": es.Count,
			"config": map[string]any{
				"node.store.allow_mmap": false,
			},
		}},
	}
	if es.RemoteClusterServer {
		spec["remoteClusterServer"] = map[string]any{"enabled": true}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "elasticsearch.k8s.elastic.co/v1",
		"kind":       "Elasticsearch",
		"metadata":   map[string]any{"name": es.Name, "namespace": es.Namespace},
		"spec":       spec,
	}}
	if es.Mutate != nil {
		es.Mutate(obj)
	}
	created, err := e.Dynamic.Resource(ElasticsearchGVR).Namespace(es.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to create Elasticsearch %s/%s: %w", es.Namespace, es.Name, err)
	}
	return created, nil
}

// WaitForSecret polls until the Secret exists and ok (if given) accepts it.
func (e *Environment) WaitForSecret(ctx context.Context, namespace, name string, ok func(*corev1.Secret) bool) (*corev1.Secret, error) {
	for {
		s, err := e.Kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && (ok == nil || ok(s)) {
			return s, nil
		}
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			// Transient apiserver errors are retried like a missing object.
			_ = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("secret %s/%s not ready in %s: %w", namespace, name, e.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitForService polls until the Service exists.
func (e *Environment) WaitForService(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	for {
		s, err := e.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("service %s/%s not created in %s: %w", namespace, name, e.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CAInfo describes the first certificate of a PEM bundle.
type CAInfo struct {
	// Fingerprint is the hex SHA-256 of the DER certificate.
	Fingerprint string
	Subject     string
	NotAfter    time.Time
	Cert        *x509.Certificate
}

// FirstCertificate parses the first certificate of a PEM bundle.
func FirstCertificate(bundle []byte) (CAInfo, error) {
	block, _ := pem.Decode(bundle)
	if block == nil || block.Type != "CERTIFICATE" {
		return CAInfo{}, fmt.Errorf("failed to find a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return CAInfo{}, fmt.Errorf("failed to parse certificate: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	return CAInfo{Fingerprint: hex.EncodeToString(sum[:]), Subject: cert.Subject.String(), NotAfter: cert.NotAfter, Cert: cert}, nil
}
