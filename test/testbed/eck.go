package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installECKCRDs installs ECK's deployed CRDs (all-crds.yaml), as users do, and waits until they
// are established.
func (e *Environment) installECKCRDs(ctx context.Context) error {
	data, err := os.ReadFile(e.opts.Binaries.ECKCRDs)
	if err != nil {
		return fmt.Errorf("failed to read ECK CRDs: %w", err)
	}
	return e.ApplyCRDs(ctx, data)
}

// ApplyCRDs creates (or replaces) every CustomResourceDefinition in the multi-document YAML and
// waits until each is established.
func (e *Environment) ApplyCRDs(ctx context.Context, manifests []byte) error {
	docs, err := decodeYAMLDocuments(manifests)
	if err != nil {
		return err
	}
	var names []string
	for _, obj := range docs {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		client := e.Dynamic.Resource(crdGVR)
		existing, err := client.Get(ctx, obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = client.Create(ctx, obj, metav1.CreateOptions{})
		case err == nil:
			obj.SetResourceVersion(existing.GetResourceVersion())
			_, err = client.Update(ctx, obj, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("failed to apply CRD %s: %w", obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, name := range names {
		if err := e.waitEstablished(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// EnsureCRDs creates the CRDs of the manifests that do not exist yet and waits until every one
// is established. Existing CRDs are left as they are: a Helm release may own them (its labels
// and annotations must stay).
func (e *Environment) EnsureCRDs(ctx context.Context, manifests []byte) error {
	docs, err := decodeYAMLDocuments(manifests)
	if err != nil {
		return err
	}
	var names []string
	for _, obj := range docs {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		_, err := e.Dynamic.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create CRD %s: %w", obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, name := range names {
		if err := e.waitEstablished(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (e *Environment) waitEstablished(ctx context.Context, name string) error {
	for {
		crd, err := e.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func decodeYAMLDocuments(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("failed to decode YAML document: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// StartECK starts the real ECK operator against this environment with the given certificate
// lifetimes (no webhook, no leader election, no telemetry). It replaces a running operator.
func (e *Environment) StartECK(ctx context.Context, o ECKOptions) error {
	e.StopECK()
	args := []string{
		"manager",
		"--enable-webhook=false",
		"--manage-webhook-certs=false",
		"--enable-leader-election=false",
		"--operator-namespace=" + OperatorNamespace,
		"--disable-telemetry",
		"--metrics-port=0",
		"--log-verbosity=0",
	}
	for flag, d := range map[string]time.Duration{
		"ca-cert-validity":      o.CACertValidity,
		"ca-cert-rotate-before": o.CACertRotateBefore,
		"cert-validity":         o.CertValidity,
		"cert-rotate-before":    o.CertRotateBefore,
	} {
		if d > 0 {
			args = append(args, fmt.Sprintf("--%s=%s", flag, d))
		}
	}
	env := []string{"KUBECONFIG=" + e.AdminKubeconfig, "OPERATOR_NAMESPACE=" + OperatorNamespace}
	p, err := startProcess("elastic-operator", e.opts.Binaries.ECKOperator, args, env, filepath.Join(e.Dir, "elastic-operator.log"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.eck = p
	e.mu.Unlock()
	// The operator has no readiness endpoint here (metrics are off); it is up when it has not
	// exited after a moment. Tests then wait for the objects it creates.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(500 * time.Millisecond):
	}
	if exited, err := p.Exited(); exited {
		return fmt.Errorf("ECK operator exited at start (%v); see %s", err, filepath.Join(e.Dir, "elastic-operator.log"))
	}
	return nil
}

// StopECK stops the operator if it runs.
func (e *Environment) StopECK() {
	e.mu.Lock()
	p := e.eck
	e.eck = nil
	e.mu.Unlock()
	if p != nil {
		p.stop(10 * time.Second)
	}
}
