package exporter

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ecklink/ecklink/agent/link"
)

func TestTransportLoadBalancerAddress(t *testing.T) {
	lb := func(typ corev1.ServiceType, ports []corev1.ServicePort, ingress ...corev1.LoadBalancerIngress) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "logs-es-transport"},
			Spec:       corev1.ServiceSpec{Type: typ, Ports: ports},
			Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}},
		}
	}
	eck := []corev1.ServicePort{{Name: "tls-transport", Port: 9300, TargetPort: intstr.FromInt32(9300)}}
	for _, tc := range []struct {
		name, want, err string
		svc             *corev1.Service
	}{
		{name: "ECK's port on a load balancer", svc: lb(corev1.ServiceTypeLoadBalancer, eck, corev1.LoadBalancerIngress{IP: "203.0.113.7"}), want: "203.0.113.7:9300"},
		{name: "another port targeting 9300", svc: lb(corev1.ServiceTypeLoadBalancer,
			[]corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(9300)}}, corev1.LoadBalancerIngress{Hostname: "lb.example"}), want: "lb.example:443"},
		{name: "named target port", svc: lb(corev1.ServiceTypeLoadBalancer,
			[]corev1.ServicePort{{Port: 9301, TargetPort: intstr.FromString("tls-transport")}}, corev1.LoadBalancerIngress{IP: "203.0.113.7"}), want: "203.0.113.7:9301"},
		{name: "port changed without targetPort", svc: lb(corev1.ServiceTypeLoadBalancer,
			[]corev1.ServicePort{{Port: 443}}, corev1.LoadBalancerIngress{IP: "203.0.113.7"}), err: "set targetPort: 9300"},
		{name: "ECK's headless default", svc: lb(corev1.ServiceTypeClusterIP, eck), err: "make it a LoadBalancer"},
		{name: "no address yet", svc: lb(corev1.ServiceTypeLoadBalancer, eck), err: "no load balancer address yet"},
		{name: "the remote cluster port is not the transport port", svc: lb(corev1.ServiceTypeLoadBalancer,
			[]corev1.ServicePort{{Port: 9443, TargetPort: intstr.FromInt32(9443)}}, corev1.LoadBalancerIngress{IP: "203.0.113.7"}), err: "targetPort 9300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := transportPort.loadBalancerAddress(tc.svc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestTrustOwnerRoundTrip(t *testing.T) {
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "eu_logs-1"}
	owner := trustOwner("logs.v2", "east", id)
	exp, peer, got, ok := parseTrustOwner(owner)
	if !ok || exp != "logs.v2" || peer != "east" || got != id {
		t.Fatalf("parse(%q) = %q %q %v %v", owner, exp, peer, got, ok)
	}
	for _, bad := range []string{"import/eu", "export/logs/east", "export/logs/east/apps/ccs", "export/logs/east/apps/ccs/bad alias"} {
		if _, _, _, ok := parseTrustOwner(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}
