package ecklink_test

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current chart")

// renderings are the golden cases: the defaults, and every value a production install might change.
var renderings = []struct {
	name string
	args []string
}{
	{"default", []string{"--set", "environment=west"}},
	{"custom", []string{"--values", "testdata/custom-values.yaml"}},
}

// TestTemplateGolden compares `helm template` output with testdata/*.golden.yaml. Refresh with
// `go test ./deploy/helm/ecklink_test -run TestTemplateGolden -update` and review the diff.
func TestTemplateGolden(t *testing.T) {
	h := newHelm(t)
	for _, r := range renderings {
		t.Run(r.name, func(t *testing.T) {
			out, err := h.template(r.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := withoutCRDs(out)
			golden := filepath.Join("testdata", r.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("failed to read golden file (create it with -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("helm template differs from %s (review, then refresh with -update):\n%s", golden, diff(string(want), string(got)))
			}
		})
	}
}

// withoutCRDs drops the CRD documents from a rendering: they are the generated files
// (TestCRDTemplates compares them), and keeping them out keeps a CRD change from rewriting the
// goldens too.
func withoutCRDs(rendered []byte) []byte {
	docs := strings.Split(string(rendered), "\n---\n")
	kept := docs[:0]
	for _, d := range docs {
		if !strings.Contains(d, "# Source: ecklink/templates/crds.yaml\n") {
			kept = append(kept, d)
		}
	}
	return []byte(strings.Join(kept, "\n---\n"))
}

// diff shows the first differing lines with a little context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	for j := max(0, i-3); j < i; j++ {
		fmt.Fprintf(&b, "   %4d  %s\n", j+1, w[j])
	}
	for j := i; j < min(len(w), i+5); j++ {
		fmt.Fprintf(&b, "-  %4d  %s\n", j+1, w[j])
	}
	for j := i; j < min(len(g), i+5); j++ {
		fmt.Fprintf(&b, "+  %4d  %s\n", j+1, g[j])
	}
	return b.String()
}

// manifests splits a rendering into its documents and decodes each into its typed Kubernetes
// object, rejecting unknown fields, so a misspelled field fails here rather than being dropped
// by the API server with a warning.
func manifests(t *testing.T, rendered []byte) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, doc := range strings.Split(string(rendered), "\n---\n") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		if meta.Kind == "" {
			continue
		}
		var obj any
		switch meta.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "Role", "ClusterRole":
			obj = &rbacv1.Role{}
		case "RoleBinding", "ClusterRoleBinding":
			obj = &rbacv1.RoleBinding{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Pod":
			obj = &corev1.Pod{}
		case "NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		default: // CustomResourceDefinition, ServiceMonitor, PrometheusRule: no Go types here.
			obj = &map[string]any{}
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s %s: %v", meta.Kind, meta.Metadata.Name, err)
		}
		key := meta.Kind + "/" + meta.Metadata.Name
		if meta.Metadata.Namespace != "" {
			key = meta.Kind + "/" + meta.Metadata.Namespace + "/" + meta.Metadata.Name
		}
		out[key] = obj
	}
	return out
}

// render renders one golden case and decodes it.
func render(t *testing.T, h *helm, name string) map[string]any {
	t.Helper()
	for _, r := range renderings {
		if r.name == name {
			out, err := h.template(r.args...)
			if err != nil {
				t.Fatal(err)
			}
			return manifests(t, out)
		}
	}
	t.Fatalf("no rendering %q", name)
	return nil
}

// TestTemplateObjects lists the objects each rendering creates.
func TestTemplateObjects(t *testing.T) {
	h := newHelm(t)
	tests := map[string][]string{
		"default": {
			"ClusterRole/ecklink-ecklink-system", "ClusterRoleBinding/ecklink-ecklink-system",
			"ConfigMap/ecklink-system/ecklink-config", "Pod/ecklink-system/ecklink-test",
			"CustomResourceDefinition/clusterexports.ecklink.io", "CustomResourceDefinition/peers.ecklink.io", "CustomResourceDefinition/remoteclusters.ecklink.io",
			"Deployment/ecklink-system/ecklink", "PodDisruptionBudget/ecklink-system/ecklink",
			"Role/ecklink-system/ecklink", "RoleBinding/ecklink-system/ecklink",
			"Service/ecklink-system/ecklink", "Service/ecklink-system/ecklink-metrics",
			"ServiceAccount/ecklink-system/ecklink",
		},
		"custom": {
			"ConfigMap/ecklink-system/ecklink-config", "Pod/ecklink-system/ecklink-test", "NetworkPolicy/ecklink-system/ecklink",
			"CustomResourceDefinition/clusterexports.ecklink.io", "CustomResourceDefinition/peers.ecklink.io", "CustomResourceDefinition/remoteclusters.ecklink.io",
			"Service/search/logs-es-remote-cluster-lb",
			"ConfigMap/monitoring/ecklink-dashboard",
			"Deployment/ecklink-system/ecklink", "PodDisruptionBudget/ecklink-system/ecklink",
			"PrometheusRule/ecklink-system/ecklink",
			"Role/ecklink-system/ecklink", "Role/logging/ecklink-ecklink-system", "Role/search/ecklink-ecklink-system",
			"RoleBinding/ecklink-system/ecklink", "RoleBinding/logging/ecklink-ecklink-system", "RoleBinding/search/ecklink-ecklink-system",
			"Service/ecklink-system/ecklink", "Service/ecklink-system/ecklink-metrics",
			"ServiceAccount/ecklink-system/ecklink", "ServiceMonitor/ecklink-system/ecklink",
		},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, h, name)
			got := slices.Sorted(maps.Keys(objs))
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("objects:\n got %q\nwant %q", got, want)
			}
		})
	}
}
