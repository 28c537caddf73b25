package ctl

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
)

// uninstallWorld is an environment with one object of each ecklink kind, the agent's own
// objects, and a credentials Secret the agent wrote beside a local Elasticsearch.
func uninstallWorld(t *testing.T, agentDeployed bool) *env {
	t.Helper()
	managed := map[string]string{"app.kubernetes.io/managed-by": "ecklink"}
	objs := []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "ecklink-agent-ca", Labels: map[string]string{"app.kubernetes.io/managed-by": "ecklink-agent"}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "ecklink-agent-identity", Labels: map[string]string{"app.kubernetes.io/managed-by": "ecklink-agent"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "ecklink-signing-ca", Labels: managed}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "user-secret"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "ccs-ecklink-remote-credentials", Labels: managed}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "ecklink-agent"}},
	}
	if agentDeployed {
		one := int32(1)
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "ecklink",
			Labels: map[string]string{"app.kubernetes.io/part-of": "ecklink", "app.kubernetes.io/component": "agent"}},
			Spec: appsv1.DeploymentSpec{Replicas: &one}})
	}
	fin := []string{v1alpha1.Finalizer}
	return fakeEnv(t, objs,
		&v1alpha1.Peer{ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "west", Finalizers: fin}, Spec: v1alpha1.PeerSpec{Environment: "west"}},
		&v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "west-logs", Finalizers: fin}},
		&v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs", Finalizers: fin}},
	)
}

func TestUninstall(t *testing.T) {
	tests := []struct {
		name     string
		deployed bool
		want     []string
		gone     []string
		kept     []string
	}{
		{
			name: "agent still deployed keeps its keys", deployed: true,
			want: []string{"removed 3 ecklink object(s)", "the agent is still deployed in namespace ecklink", "run agentctl uninstall again after helm uninstall",
				"left by the agent outside its namespace: Secret search/ccs-ecklink-remote-credentials"},
			kept: []string{"ecklink-agent-ca", "ecklink-signing-ca", "user-secret"},
		},
		{
			name: "agent gone purges its keys", deployed: false,
			want: []string{"removed 3 ecklink object(s)", "purged 4 object(s) of the agent in namespace ecklink"},
			gone: []string{"ecklink-agent-ca", "ecklink-signing-ca"},
			kept: []string{"user-secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := uninstallWorld(t, tt.deployed)
			code, out, errOut := runCtl(t, map[string]*env{"east": e}, "uninstall", "--context", "east", "--timeout", "2s")
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			ctx := context.Background()
			for _, n := range tt.gone {
				if _, err := e.kube.CoreV1().Secrets(agentNS).Get(ctx, n, metav1.GetOptions{}); err == nil {
					t.Errorf("Secret %s kept, want deleted", n)
				}
			}
			for _, n := range tt.kept {
				if _, err := e.kube.CoreV1().Secrets(agentNS).Get(ctx, n, metav1.GetOptions{}); err != nil {
					t.Errorf("Secret %s: %v, want kept", n, err)
				}
			}
			for _, l := range []func() (int, error){
				func() (int, error) { l, err := e.crds.Peers().List(ctx, "", metav1.ListOptions{}); return len(l), err },
				func() (int, error) {
					l, err := e.crds.RemoteClusters().List(ctx, "", metav1.ListOptions{})
					return len(l), err
				},
				func() (int, error) {
					l, err := e.crds.ClusterExports().List(ctx, "", metav1.ListOptions{})
					return len(l), err
				},
			} {
				if n, err := l(); err != nil || n != 0 {
					t.Errorf("ecklink objects left: %d (%v)", n, err)
				}
			}
		})
	}
}

// stuckEnv is uninstallWorld where deleting a RemoteCluster only marks it, as the API server does
// while a finalizer remains and no agent removes it.
func stuckEnv(t *testing.T) *env {
	t.Helper()
	e := uninstallWorld(t, false)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "west-logs", Finalizers: []string{v1alpha1.Finalizer}}}
	u, err := kube.ToUnstructured(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := dyn.Tracker().Add(u); err != nil {
		t.Fatal(err)
	}
	dyn.PrependReactor("delete", "remoteclusters", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	if e.crds, err = kube.NewClient(kube.ClientConfig{Dynamic: dyn}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestUninstallStuck(t *testing.T) {
	t.Run("without force: not ready, names the object", func(t *testing.T) {
		code, _, errOut := runCtl(t, map[string]*env{"east": stuckEnv(t)}, "uninstall", "--context", "east", "--timeout", "1s")
		if code != ExitNotReady || !strings.Contains(errOut, "search/west-logs") {
			t.Errorf("exit %d, stderr:\n%s\nwant %d naming search/west-logs", code, errOut, ExitNotReady)
		}
	})
	t.Run("with force: the finalizer goes", func(t *testing.T) {
		e := stuckEnv(t)
		code, out, errOut := runCtl(t, map[string]*env{"east": e}, "uninstall", "--context", "east", "--timeout", "1s", "--force")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "forced (finalizer removed, not cleaned up by the agent): RemoteCluster search/west-logs") {
			t.Errorf("output lacks the forced object:\n%s", out)
		}
		rc, err := e.crds.RemoteClusters().Get(context.Background(), "search", "west-logs")
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.Finalizers) != 0 {
			t.Errorf("finalizers %v, want none", rc.Finalizers)
		}
	})
}
