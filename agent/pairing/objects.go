package pairing

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// Labels and names of the pairing objects in the agent's namespace.
const (
	// LabelManagedBy and ManagedBy mark every object ecklink creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "ecklink"
	// LabelPairing says what a pairing Secret is: KindToken or KindJoinRequest.
	LabelPairing    = "ecklink.io/pairing"
	KindToken       = "token"
	KindJoinRequest = "join-request"

	// AnnotationPairedBy on a Peer records how it was created (e.g. "token 0123abcd...").
	AnnotationPairedBy = "ecklink.io/paired-by"

	// maxPeerCAs bounds the agent CAs accepted for one peer; an agent holds at most three
	// (active, next, previous).
	maxPeerCAs = 8
)

// PeerLimits bounds a peer's agent CA bundle.
var PeerLimits = pemutil.Limits{MaxBytes: 64 << 10, MaxCertificates: maxPeerCAs}

// AgentIdentity is an agent's public identity as its ConfigMap ecklink-agent-identity holds it.
type AgentIdentity struct {
	Environment string
	// Bundle is the PEM bundle peers must trust for this agent.
	Bundle []byte
	// Endpoints are where the agent accepts streams; empty for an agent that only dials.
	Endpoints []string
	// Pin is the SPKI pin of the active CA.
	Pin string
	// CAs are the parsed certificates of Bundle.
	CAs []*x509.Certificate
}

// Pins returns the pin of the active CA first, then those of the other CAs in the bundle.
func (a AgentIdentity) Pins() []string {
	out := []string{a.Pin}
	for _, c := range a.CAs {
		if p := pemutil.SPKIPin(c); p != a.Pin {
			out = append(out, p)
		}
	}
	return out
}

// ReadIdentity reads an agent's identity ConfigMap in namespace.
func ReadIdentity(ctx context.Context, kube kubernetes.Interface, namespace string) (AgentIdentity, error) {
	cm, err := kube.CoreV1().ConfigMaps(namespace).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return AgentIdentity{}, fmt.Errorf("failed to read the agent identity: no ConfigMap %s/%s (is the agent installed in namespace %s and started?)", namespace, identity.ConfigMapName, namespace)
	}
	if err != nil {
		return AgentIdentity{}, fmt.Errorf("failed to read the agent identity: %w", err)
	}
	id := AgentIdentity{
		Environment: cm.Data[identity.KeyEnvironment],
		Bundle:      []byte(cm.Data[identity.KeyBundle]),
		Endpoints:   strings.Fields(cm.Data[identity.KeyEndpoints]),
		Pin:         cm.Data[identity.KeyPin],
	}
	if err := identity.ValidateEnvironment(id.Environment); err != nil {
		return AgentIdentity{}, fmt.Errorf("failed to read the agent identity in ConfigMap %s/%s: %w", namespace, identity.ConfigMapName, err)
	}
	if id.CAs, err = pemutil.ParseCertificates(id.Bundle, PeerLimits); err != nil {
		return AgentIdentity{}, fmt.Errorf("failed to read the agent identity in ConfigMap %s/%s: %s: %w", namespace, identity.ConfigMapName, identity.KeyBundle, err)
	}
	return id, nil
}

// NewPeer returns the Peer object for environment env in namespace.
func NewPeer(namespace, env string, bundle []byte, endpoints []string, dial bool, pairedBy string) *v1alpha1.Peer {
	p := &v1alpha1.Peer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindPeer},
		ObjectMeta: metav1.ObjectMeta{Name: env, Namespace: namespace},
		Spec:       v1alpha1.PeerSpec{Environment: env, CABundle: string(bundle), Endpoints: endpoints, Dial: dial},
	}
	if pairedBy != "" {
		p.Annotations = map[string]string{AnnotationPairedBy: pairedBy}
	}
	return p
}

// ValidateEndpoint checks a host:port endpoint.
func ValidateEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("%q: want host:port", ep)
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: invalid host", ep)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be a number in [1,65535]", ep)
	}
	return nil
}
