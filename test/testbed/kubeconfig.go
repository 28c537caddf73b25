package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func (e *Environment) adminRESTConfig() *rest.Config {
	return &rest.Config{
		Host: e.APIServerURL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.pki.caPEM,
			CertData: e.pki.adminCertPEM,
			KeyData:  e.pki.adminKeyPEM,
		},
		QPS:   100,
		Burst: 200,
	}
}

func (e *Environment) writeAdminKubeconfig() error {
	e.Admin = e.adminRESTConfig()
	var err error
	if e.Kube, err = kubernetes.NewForConfig(e.Admin); err != nil {
		return fmt.Errorf("failed to build admin client: %w", err)
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.Admin); err != nil {
		return fmt.Errorf("failed to build dynamic client: %w", err)
	}
	e.AdminKubeconfig = filepath.Join(e.Dir, "admin.kubeconfig")
	return writeKubeconfig(e.AdminKubeconfig, e.Name, e.APIServerURL(), e.pki.caPEM, &clientcmdapi.AuthInfo{
		ClientCertificateData: e.pki.adminCertPEM,
		ClientKeyData:         e.pki.adminKeyPEM,
	})
}

// ServiceAccountKubeconfig creates the ServiceAccount if needed, obtains a token for it from the
// TokenRequest API, and writes a kubeconfig with that token. It returns the kubeconfig's path.
func (e *Environment) ServiceAccountKubeconfig(ctx context.Context, namespace, name string, ttl time.Duration) (string, error) {
	if err := e.EnsureNamespace(ctx, namespace); err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := e.Kube.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("failed to create service account %s/%s: %w", namespace, name, err)
	}
	seconds := int64(ttl / time.Second)
	tr, err := e.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to request a token for %s/%s: %w", namespace, name, err)
	}
	path := filepath.Join(e.Dir, fmt.Sprintf("sa-%s-%s.kubeconfig", namespace, name))
	if err := writeKubeconfig(path, e.Name, e.APIServerURL(), e.pki.caPEM, &clientcmdapi.AuthInfo{Token: tr.Status.Token}); err != nil {
		return "", err
	}
	return path, nil
}

// EnsureNamespace creates the namespace if it does not exist.
func (e *Environment) EnsureNamespace(ctx context.Context, name string) error {
	_, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", name, err)
	}
	return nil
}

// writeKubeconfig writes a one-context kubeconfig named after the environment.
func writeKubeconfig(path, name, server string, ca []byte, auth *clientcmdapi.AuthInfo) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = auth
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("failed to write kubeconfig %s: %w", path, err)
	}
	return nil
}
