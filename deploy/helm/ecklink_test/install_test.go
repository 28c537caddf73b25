package ecklink_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ecklink/ecklink/test/testbed"
)

// TestInstall installs the chart twice with real helm into a real kube-apiserver: cluster-wide
// (the default) and namespaced. It then asks the API server's own RBAC what each release's
// ServiceAccount may do, through that ServiceAccount's token, and checks that the pod template
// passes the restricted Pod Security Standard.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver (skipped with -short)")
	}
	h := newHelm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := testbed.Start(ctx, testbed.Options{Name: "helm", ECK: testbed.ECKOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Stop()
		if !t.Failed() {
			_ = os.RemoveAll(env.Dir)
			return
		}
		t.Logf("the test bed's files and kube-apiserver.log are kept in %s", env.Dir)
	})
	// Namespaces: the cluster-wide agent's (enforcing the restricted standard), the namespaced
	// agent's, two it watches and one it does not.
	for _, ns := range []string{"ecklink-system", "ecklink-scoped", "team-a", "team-b", "team-c"} {
		labels := map[string]string{}
		if ns == "ecklink-system" {
			labels["pod-security.kubernetes.io/enforce"] = "restricted"
		}
		if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := []string{"--kubeconfig", env.AdminKubeconfig}

	start := time.Now()
	notes, err := h.run(ctx, append([]string{"install", "ecklink", chart, "--namespace", "ecklink-system", "--set", "environment=west"}, kubeconfig...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install (cluster-wide) took %s", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{
		`ecklink agent "west" is installed in namespace ecklink-system`,
		"agentctl pair token --context <this> --namespace ecklink-system --peer <other environment>",
		"agentctl pair join TOKEN --context <other>",
		"agentctl status --context <this> --namespace ecklink-system",
		"--set 'advertiseEndpoints={HOST:PORT}'",
	} {
		if !strings.Contains(string(notes), want) {
			t.Errorf("install notes lack %q:\n%s", want, notes)
		}
	}
	// A second release in the same cluster: one release owns the (cluster-scoped) CRDs.
	if _, err := h.run(ctx, append([]string{"install", "scoped", chart, "--namespace", "ecklink-scoped", "--set", "crds.enabled=false",
		"--set", "environment=east", "--set", "rbac.namespaced=true", "--set", "watchNamespaces={team-a,team-b}",
		"--set", "leaderElection.leaseName=scoped-lease", "--set", "service.type=LoadBalancer"}, kubeconfig...)...); err != nil {
		t.Fatal(err)
	}

	t.Run("CRDs", func(t *testing.T) { checkCRDs(ctx, t, env) })
	t.Run("restricted pod security", func(t *testing.T) { checkPodSecurity(ctx, t, env) })
	t.Run("cluster-wide RBAC", func(t *testing.T) { checkClusterWideRBAC(ctx, t, env) })
	t.Run("namespaced RBAC", func(t *testing.T) { checkNamespacedRBAC(ctx, t, env) })
	t.Run("load balancer notes", func(t *testing.T) {
		out, err := h.run(ctx, append([]string{"get", "notes", "scoped", "--namespace", "ecklink-scoped"}, kubeconfig...)...)
		if err != nil {
			t.Fatal(err)
		}
		if want := "kubectl get service scoped-ecklink -n ecklink-scoped -o jsonpath='{.status.loadBalancer.ingress[0].ip}"; !strings.Contains(string(out), want) {
			t.Errorf("notes lack %q:\n%s", want, out)
		}
	})
	t.Run("uninstall", func(t *testing.T) {
		if _, err := h.run(ctx, append([]string{"uninstall", "ecklink", "--namespace", "ecklink-system", "--wait"}, kubeconfig...)...); err != nil {
			t.Fatal(err)
		}
		_, err := env.Kube.RbacV1().ClusterRoles().Get(ctx, "ecklink-ecklink-system", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole after uninstall: %v, want not found", err)
		}
	})
}

// checkCRDs expects the chart's three CRDs established (templates/crds.yaml; helm applies CRDs first).
func checkCRDs(ctx context.Context, t *testing.T, env *testbed.Environment) {
	crds := env.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range []string{"peers.ecklink.io", "clusterexports.ecklink.io", "remoteclusters.ecklink.io"} {
		crd, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CRD %s: %v", name, err)
			continue
		}
		conds := conditions(crd.Object)
		if conds["Established"] != "True" {
			t.Errorf("CRD %s conditions %v, want Established", name, conds)
		}
	}
}

// conditions maps an unstructured object's status condition types to their status.
func conditions(obj map[string]any) map[string]string {
	out := map[string]string{}
	status, _ := obj["status"].(map[string]any)
	list, _ := status["conditions"].([]any)
	for _, c := range list {
		m, _ := c.(map[string]any)
		typ, _ := m["type"].(string)
		st, _ := m["status"].(string)
		out[typ] = st
	}
	return out
}

// checkPodSecurity creates (dry run) a pod from the Deployment's template in ecklink-system,
// which enforces the restricted Pod Security Standard: admission rejects any violation.
func checkPodSecurity(ctx context.Context, t *testing.T, env *testbed.Environment) {
	d, err := env.Kube.AppsV1().Deployments("ecklink-system").Get(ctx, "ecklink", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "ecklink-", Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
	if _, err := env.Kube.CoreV1().Pods("ecklink-system").Create(ctx, pod, dryRun); err != nil {
		t.Errorf("the agent pod is not admitted under the restricted Pod Security Standard: %v", err)
	}
	// The control: the same pod without its security contexts must be refused, or the check
	// above proves nothing.
	pod.Spec.SecurityContext, pod.Spec.Containers[0].SecurityContext = nil, nil
	if _, err := env.Kube.CoreV1().Pods("ecklink-system").Create(ctx, pod, dryRun); !apierrors.IsForbidden(err) {
		t.Errorf("a pod without security contexts: %v, want Forbidden (is PodSecurity admission on?)", err)
	}
}
