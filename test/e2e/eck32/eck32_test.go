package eck32

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// esVersion is an Elasticsearch that ECK 3.2 runs (no strong identity: below 9.3).
const esVersion = "8.19.2"

// TestLinkAndRotation: with ECK 3.2 on both sides, west's export reaches its remote cluster
// server through the user's LoadBalancer Service named in spec.service.name (ECK 3.2's own
// <es>-es-remote-cluster is a headless ClusterIP Service it cannot make a LoadBalancer); east's
// link connects, follows two transport CA renewals of the real ECK 3.2 operator, and a probe of
// east's _remote/info every second never sees it disconnected after the first connection.
func TestLinkAndRotation(t *testing.T) {
	harness.RequireWorld(t, world)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const ns, alias, lbName = "eck32", "west-logs", "logs-es-remote-cluster-lb"
	west, east := world.Clusters["west"], world.Clusters["east"]
	// As ECK >= 3.3 users do: ask ECK for a LoadBalancer. ECK 3.2's CRD has no such field (the
	// API server prunes it), so its Service stays headless.
	remotePod, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: esVersion, RemoteClusterServer: true,
		Mutate: func(obj *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(obj.Object, "LoadBalancer", "spec", "remoteClusterServer", "service", "spec", "type")
		}})
	if err != nil {
		t.Fatal(err)
	}
	es, err := west.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(ns).Get(ctx, "logs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(es.Object, "spec", "remoteClusterServer", "service"); found {
		t.Fatalf("ECK %s's CRD kept spec.remoteClusterServer.service", eckVersion)
	}
	localPod, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: esVersion})
	if err != nil {
		t.Fatal(err)
	}

	// ECK 3.2's remote cluster Service: headless ClusterIP on 9443 (ECK 3.5 would make it the
	// LoadBalancer asked for above).
	svc, err := west.Env.WaitForService(ctx, ns, "logs-es-remote-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9443 {
		t.Fatalf("ECK %s's remote cluster Service: type %s, clusterIP %q, ports %+v; want a headless ClusterIP on 9443", eckVersion, svc.Spec.Type, svc.Spec.ClusterIP, svc.Spec.Ports)
	}

	// The user's LoadBalancer (README: ECK 3.0-3.2), its address set as a cloud controller would.
	if err := createLoadBalancer(ctx, west.Env, ns, lbName, svc.Spec.Selector, remotePod.RemoteClusterAddress()); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, ns, "logs", "logs", "", []string{"east"}, func(e *v1alpha1.ClusterExport) {
		e.Spec.Service = &v1alpha1.ServiceReference{Name: lbName}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, ns, alias, "ccs", alias, "west", ns, "logs", nil); err != nil {
		t.Fatal(err)
	}

	probe := harness.StartProbe(ctx, localPod, alias, time.Second)
	defer probe.Stop()
	took, err := probe.WaitConnected(ctx, 60*time.Second)
	if err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, ns, alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	t.Logf("connected %s after the import", took.Round(100*time.Millisecond))
	if _, err := east.WaitRemoteCluster(ctx, ns, alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}

	// Two renewals by ECK 3.2; east trusts each new CA soon after (esim serves a certificate of
	// the new CA at once, so a link that did not follow is disconnected at the next sample).
	current, err := transportCA(ctx, west.Env, ns)
	if err != nil {
		t.Fatal(err)
	}
	for rotations := 0; rotations < 2; {
		ca, err := transportCA(ctx, west.Env, ns)
		if err == nil && ca.Fingerprint != current.Fingerprint {
			rotations++
			current = ca
			renewed := time.Now()
			harness.WaitFor(ctx, t, 15*time.Second, "east trusts west's renewed CA", func() (bool, string) {
				return localTrusts(ctx, east.Env, ns, ca), "east does not trust " + ca.Fingerprint[:16]
			})
			t.Logf("ECK %s renewed the CA (%d): %s; east trusted it %s later", eckVersion, rotations, ca.Fingerprint[:16], time.Since(renewed).Round(100*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d CA renewals by ECK %s: %v", rotations, eckVersion, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	// A few samples with the last CA's certificate.
	time.Sleep(5 * time.Second)
	r := probe.Stop()
	t.Logf("probe: %d samples, %d connected, %d disconnected, first connected at %s", r.Samples, r.Connected, len(r.Disconnected), r.FirstConnected.Format(time.RFC3339))
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	if r.Connected < 30 {
		t.Errorf("only %d connected samples", r.Connected)
	}
}

// createLoadBalancer creates a LoadBalancer Service on the remote cluster server port (9443)
// and sets its load balancer address to addr's host, as a cloud controller would.
func createLoadBalancer(ctx context.Context, env *testbed.Environment, ns, name string, selector map[string]string, addr string) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	svc, err := env.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "rcs", Port: int32(port), TargetPort: intstr.FromInt32(9443), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: host}}
	_, err = env.Kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	return err
}

// transportCA reads the remote's current transport CA.
func transportCA(ctx context.Context, env *testbed.Environment, ns string) (testbed.CAInfo, error) {
	s, err := env.Kube.CoreV1().Secrets(ns).Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return testbed.CAInfo{}, err
	}
	return testbed.FirstCertificate(s.Data["ca.crt"])
}

// localTrusts reports whether the agent's CA ConfigMap for the local Elasticsearch holds ca.
func localTrusts(ctx context.Context, env *testbed.Environment, ns string, ca testbed.CAInfo) bool {
	cm, err := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
	if err != nil {
		return false
	}
	for _, c := range certs {
		if pemutil.Fingerprint(c) == ca.Fingerprint {
			return true
		}
	}
	return false
}
