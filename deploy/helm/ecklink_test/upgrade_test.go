package ecklink_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ecklink/ecklink/test/compat"
	"github.com/ecklink/ecklink/test/testbed"
)

var (
	crdGVR  = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	peerGVR = schema.GroupVersionResource{Group: "ecklink.io", Version: "v1alpha1", Resource: "peers"}
	crdList = []string{"peers.ecklink.io", "clusterexports.ecklink.io", "remoteclusters.ecklink.io"}
)

// TestUpgradeFromRelease upgrades a release installed by the last release's chart (its CRDs
// from crds/, which Helm installs once and never owns) to this chart (CRDs as templates) with
// real helm, as the README's Upgrade section says: a plain upgrade is refused, --take-ownership
// adopts the CRDs and upgrades them with the objects in place; later upgrades need no flag;
// uninstall keeps the CRDs and their objects (crds.keep).
func TestUpgradeFromRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver (skipped with -short)")
	}
	h := newHelm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rel, err := compat.Last()
	if err != nil {
		t.Fatal(err)
	}
	oldChart, err := rel.Chart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env, err := testbed.Start(ctx, testbed.Options{Name: "upgrade", ECK: testbed.ECKOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Stop()
		if !t.Failed() {
			_ = os.RemoveAll(env.Dir)
		}
	})
	kc := []string{"--namespace", "ecklink", "--kubeconfig", env.AdminKubeconfig, "--set", "environment=west"}
	if _, err := h.run(ctx, append([]string{"install", "ecklink", oldChart, "--create-namespace"}, kc...)...); err != nil {
		t.Fatal(err)
	}
	// An object of the old CRDs that must survive the upgrade.
	peer := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ecklink.io/v1alpha1", "kind": "Peer",
		"metadata": map[string]any{"name": "east", "namespace": "ecklink"},
		"spec":     map[string]any{"environment": "east", "caBundle": "not checked by the API server", "endpoints": []any{"east.example.com:9400"}, "dial": true},
	}}
	if _, err := env.Dynamic.Resource(peerGVR).Namespace("ecklink").Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	_, err = h.run(ctx, append([]string{"upgrade", "ecklink", chart}, kc...)...)
	if err == nil || !strings.Contains(err.Error(), "invalid ownership metadata") {
		t.Fatalf("plain upgrade from %s: %v, want the refusal the README explains (invalid ownership metadata)", rel.Version, err)
	}
	if _, err := h.run(ctx, append([]string{"upgrade", "ecklink", chart, "--take-ownership"}, kc...)...); err != nil {
		t.Fatalf("upgrade with --take-ownership: %v", err)
	}
	for _, name := range crdList {
		crd, err := env.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if crd.GetAnnotations()["meta.helm.sh/release-name"] != "ecklink" || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" ||
			crd.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("CRD %s not owned by the release: labels %v annotations %v", name, crd.GetLabels(), crd.GetAnnotations())
		}
		if !hasPrinterColumn(crd, "Reason") {
			t.Errorf("CRD %s has no Reason column: not upgraded to this chart's CRDs", name)
		}
	}
	if _, err := env.Dynamic.Resource(peerGVR).Namespace("ecklink").Get(ctx, "east", metav1.GetOptions{}); err != nil {
		t.Errorf("Peer east after the upgrade: %v", err)
	}
	if _, err := h.run(ctx, append([]string{"upgrade", "ecklink", chart, "--set", "logLevel=debug"}, kc...)...); err != nil {
		t.Errorf("a later upgrade needs no flag: %v", err)
	}
	if _, err := h.run(ctx, "uninstall", "ecklink", "--namespace", "ecklink", "--kubeconfig", env.AdminKubeconfig, "--wait"); err != nil {
		t.Fatal(err)
	}
	for _, name := range crdList {
		if _, err := env.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("CRD %s after uninstall: %v, want kept (crds.keep)", name, err)
		}
	}
	if _, err := env.Dynamic.Resource(peerGVR).Namespace("ecklink").Get(ctx, "east", metav1.GetOptions{}); err != nil {
		t.Errorf("Peer east after uninstall: %v, want kept with its CRD", err)
	}
}

func hasPrinterColumn(crd *unstructured.Unstructured, name string) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		cols, _, _ := unstructured.NestedSlice(v.(map[string]any), "additionalPrinterColumns")
		for _, c := range cols {
			if c.(map[string]any)["name"] == name {
				return true
			}
		}
	}
	return false
}
