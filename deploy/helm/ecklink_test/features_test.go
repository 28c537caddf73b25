package ecklink_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// renderArgs renders the chart with extra args and decodes it.
func renderArgs(t *testing.T, h *helm, args ...string) map[string]any {
	t.Helper()
	out, err := h.template(append([]string{"--set", "environment=west"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return manifests(t, out)
}

// TestCRDTemplates: the CRDs are templates (upgraded by helm upgrade) with the generated
// files' spec unchanged, kept on uninstall and rollback unless crds.keep=false, and absent with
// crds.enabled=false.
func TestCRDTemplates(t *testing.T) {
	h := newHelm(t)
	files, err := filepath.Glob(filepath.Join(chart, "files", "crds", "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("generated CRDs: %v %v", files, err)
	}
	tests := []struct {
		name string
		args []string
		want int
		keep bool
	}{
		{"default", nil, 3, true},
		{"not kept", []string{"--set", "crds.keep=false"}, 3, false},
		{"disabled", []string{"--set", "crds.enabled=false"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderArgs(t, h, tt.args...)
			n := 0
			for _, f := range files {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var gen map[string]any
				if err := yaml.Unmarshal(raw, &gen); err != nil {
					t.Fatal(err)
				}
				name := gen["metadata"].(map[string]any)["name"].(string)
				obj, ok := objs["CustomResourceDefinition/"+name].(*map[string]any)
				if !ok {
					continue
				}
				n++
				crd := *obj
				if !reflect.DeepEqual(crd["spec"], gen["spec"]) {
					t.Errorf("%s: rendered spec differs from %s", name, f)
				}
				meta := crd["metadata"].(map[string]any)
				anns, _ := meta["annotations"].(map[string]any)
				if got := anns["helm.sh/resource-policy"] == "keep"; got != tt.keep {
					t.Errorf("%s: resource-policy keep %v, want %v (annotations %v)", name, got, tt.keep, anns)
				}
				labels, _ := meta["labels"].(map[string]any)
				if labels["app.kubernetes.io/managed-by"] != "Helm" || labels["app.kubernetes.io/part-of"] != "ecklink" {
					t.Errorf("%s: labels %v", name, labels)
				}
			}
			if n != tt.want {
				t.Errorf("%d CRDs rendered, want %d", n, tt.want)
			}
		})
	}
}

// TestConfigReloadsWithoutRollout: elasticsearchEndpoints reach the agent through its config
// file only, so changing them leaves the pod template (and so the pods) alone.
func TestConfigReloadsWithoutRollout(t *testing.T) {
	h := newHelm(t)
	a := renderArgs(t, h, "--set", "elasticsearchEndpoints.search/ccs=https://10.0.0.1:9200")
	b := renderArgs(t, h, "--set", "elasticsearchEndpoints.search/ccs=https://10.0.0.2:9200")
	da, db := deployment(t, a), deployment(t, b)
	if !reflect.DeepEqual(da.Spec.Template, db.Spec.Template) {
		t.Error("changing elasticsearchEndpoints changes the pod template: the pods would restart instead of reloading")
	}
	cm, ok := b["ConfigMap/ecklink-system/ecklink-config"].(*corev1.ConfigMap)
	if !ok || !strings.Contains(cm.Data["config.yaml"], "search/ccs: https://10.0.0.2:9200") {
		t.Errorf("config file does not carry the endpoint: %+v", cm)
	}
	for _, arg := range db.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(arg, "--elasticsearch-endpoint") {
			t.Errorf("arg %q: flags win over the file, so the endpoint would never reload", arg)
		}
	}
}

// TestNetworkPolicy checks the optional policy: off by default; on, it admits the peer port
// from the peers, the metrics port from Prometheus and the chart's test pod, and lets the agent
// reach the API server, Elasticsearch, the peers and DNS only.
func TestNetworkPolicy(t *testing.T) {
	h := newHelm(t)
	if _, ok := render(t, h, "default")["NetworkPolicy/ecklink-system/ecklink"]; ok {
		t.Error("a NetworkPolicy is rendered by default")
	}
	np, ok := render(t, h, "custom")["NetworkPolicy/ecklink-system/ecklink"].(*networkingv1.NetworkPolicy)
	if !ok {
		t.Fatal("no NetworkPolicy with networkPolicy.enabled")
	}
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "ecklink" || !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
		t.Errorf("selector %v types %v", np.Spec.PodSelector, np.Spec.PolicyTypes)
	}
	ports := func(ps []networkingv1.NetworkPolicyPort) []int {
		var out []int
		for _, p := range ps {
			out = append(out, p.Port.IntValue())
		}
		return out
	}
	in := np.Spec.Ingress
	if len(in) != 2 || !slices.Equal(ports(in[0].Ports), []int{9400}) || in[0].From[0].IPBlock.CIDR != "203.0.113.0/24" {
		t.Errorf("peer ingress %+v", in)
	}
	if len(in) == 2 && (!slices.Equal(ports(in[1].Ports), []int{9401, 9400}) || in[1].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "ecklink-test" ||
		in[1].From[1].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring") {
		t.Errorf("metrics ingress %+v", in[1])
	}
	out := np.Spec.Egress
	if len(out) != 4 {
		t.Fatalf("egress rules %d, want API server, Elasticsearch, peers, DNS", len(out))
	}
	if !slices.Equal(ports(out[0].Ports), []int{443}) || out[0].To[0].IPBlock.CIDR != "10.0.0.1/32" {
		t.Errorf("API server egress %+v", out[0])
	}
	es := out[1].To[0]
	if !slices.Equal(ports(out[1].Ports), []int{9200}) || es.PodSelector.MatchLabels["common.k8s.elastic.co/type"] != "elasticsearch" ||
		es.NamespaceSelector == nil || len(es.NamespaceSelector.MatchExpressions) != 1 || !slices.Equal(es.NamespaceSelector.MatchExpressions[0].Values, []string{"search", "logging"}) {
		t.Errorf("Elasticsearch egress %+v, want the watched namespaces' ECK pods on 9200", out[1])
	}
	if !slices.Equal(ports(out[2].Ports), []int{443, 9400}) || out[2].To[0].IPBlock.CIDR != "198.51.100.0/24" {
		t.Errorf("peer egress %+v", out[2])
	}
	if !slices.Equal(ports(out[3].Ports), []int{53, 53}) {
		t.Errorf("DNS egress %+v", out[3])
	}
}

// TestExtras: extraVolumes, extraVolumeMounts and extraObjects, templated.
func TestExtras(t *testing.T) {
	h := newHelm(t)
	objs := render(t, h, "custom")
	d := deployment(t, objs)
	if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "ca-bundle" && v.ConfigMap != nil && v.ConfigMap.Name == "ecklink-extra-ca"
	}) {
		t.Errorf("volumes %+v lack the templated extra volume", d.Spec.Template.Spec.Volumes)
	}
	if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "ca-bundle" && m.MountPath == "/etc/extra-ca"
	}) {
		t.Errorf("mounts %+v lack the extra mount", d.Spec.Template.Spec.Containers[0].VolumeMounts)
	}
	svc, ok := objs["Service/search/logs-es-remote-cluster-lb"].(*corev1.Service)
	if !ok || svc.Labels["app.kubernetes.io/part-of"] != "ecklink" || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("extra object %+v", svc)
	}
}

// TestHelmTestPod: the helm test pod runs agentctl check against the release's Services with
// the agent CA from the identity ConfigMap, and no Service, PDB or policy of the agent selects it.
func TestHelmTestPod(t *testing.T) {
	h := newHelm(t)
	objs := render(t, h, "default")
	pod, ok := objs["Pod/ecklink-system/ecklink-test"].(*corev1.Pod)
	if !ok {
		t.Fatal("no test pod")
	}
	if pod.Annotations["helm.sh/hook"] != "test" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("annotations %v restartPolicy %s", pod.Annotations, pod.Spec.RestartPolicy)
	}
	c := pod.Spec.Containers[0]
	want := []string{"check", "--ready-url=http://ecklink-metrics.ecklink-system.svc:9401/readyz", "--peer-address=ecklink.ecklink-system.svc:9400",
		"--environment=west", "--ca-file=/etc/ecklink-identity/bundle.crt", "--timeout=2m"}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/agentctl"}) || !slices.Equal(c.Args, want) {
		t.Errorf("command %q args %q, want agentctl %q", c.Command, c.Args, want)
	}
	if v := pod.Spec.Volumes[0]; v.ConfigMap == nil || v.ConfigMap.Name != "ecklink-agent-identity" {
		t.Errorf("volume %+v, want the identity ConfigMap", v)
	}
	sel := deployment(t, objs).Spec.Selector.MatchLabels
	matches := true
	for k, v := range sel {
		matches = matches && pod.Labels[k] == v
	}
	if matches {
		t.Errorf("test pod labels %v match the agent selector %v: the Services would send peers to it", pod.Labels, sel)
	}
}

var _ = appsv1.Deployment{}
