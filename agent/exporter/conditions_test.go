package exporter

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/internal/testenv"
)

func export(model v1alpha1.SecurityModel, proxy string) *v1alpha1.ClusterExport {
	return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs"},
		Spec: v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"}, Model: model, ProxyAddress: proxy}}
}

func service(name string, typ corev1.ServiceType, target int32, ingress ...corev1.LoadBalancerIngress) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: name},
		Spec:   corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 443, TargetPort: intstr.FromInt32(target)}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: ingress}}}
}

// TestAddressCondition: every reason of AddressResolved, for both security models, from the
// Services the exporter reads (a fake API server).
func TestAddressCondition(t *testing.T) {
	lbIP := corev1.LoadBalancerIngress{IP: "203.0.113.7"}
	apiKey, cert := v1alpha1.SecurityModelAPIKey, v1alpha1.SecurityModelCertificate
	for _, tc := range []struct {
		name       string
		model      v1alpha1.SecurityModel
		proxy      string
		svc        *corev1.Service
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		{"proxy address", apiKey, "logs.example.com:9443", nil, metav1.ConditionTrue, v1alpha1.ReasonAddressFromSpec, "peers dial logs.example.com:9443 (spec.proxyAddress)"},
		{"load balancer", apiKey, "", service("logs-es-remote-cluster", corev1.ServiceTypeLoadBalancer, 9443, lbIP), metav1.ConditionTrue, v1alpha1.ReasonAddressFromService, "peers dial 203.0.113.7:443 (load balancer)"},
		{"no service", apiKey, "", nil, metav1.ConditionFalse, v1alpha1.ReasonServiceNotFound, "service logs-es-remote-cluster not found"},
		{"port not targeting 9443", apiKey, "", service("logs-es-remote-cluster", corev1.ServiceTypeLoadBalancer, 9200, lbIP), metav1.ConditionFalse, v1alpha1.ReasonInvalidServicePort, "set targetPort: 9443"},
		{"no load balancer address yet", apiKey, "", service("logs-es-remote-cluster", corev1.ServiceTypeLoadBalancer, 9443), metav1.ConditionFalse, v1alpha1.ReasonLoadBalancerPending, "no load balancer address yet"},
		{"not a load balancer", apiKey, "", service("logs-es-remote-cluster", corev1.ServiceTypeClusterIP, 9443), metav1.ConditionFalse, v1alpha1.ReasonLoadBalancerPending, "make it a LoadBalancer"},
		{"certificate: proxy address", cert, "logs.example.com:9300", nil, metav1.ConditionTrue, v1alpha1.ReasonAddressFromSpec, "peers dial the transport port at logs.example.com:9300"},
		{"certificate: load balancer", cert, "", service("logs-es-transport", corev1.ServiceTypeLoadBalancer, 9300, lbIP), metav1.ConditionTrue, v1alpha1.ReasonAddressFromService, "the transport port at 203.0.113.7:443 (load balancer)"},
		{"certificate: no service", cert, "", nil, metav1.ConditionFalse, v1alpha1.ReasonServiceNotFound, "service logs-es-transport not found"},
		{"certificate: port not targeting 9300", cert, "", service("logs-es-transport", corev1.ServiceTypeLoadBalancer, 9443, lbIP), metav1.ConditionFalse, v1alpha1.ReasonInvalidServicePort, "set targetPort: 9300"},
		{"certificate: ECK's headless default", cert, "", service("logs-es-transport", corev1.ServiceTypeClusterIP, 9300), metav1.ConditionFalse, v1alpha1.ReasonLoadBalancerPending, "make it a LoadBalancer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc := fake.NewClientset()
			if tc.svc != nil {
				kc = fake.NewClientset(tc.svc)
			}
			e := &Exporter{cfg: Config{Deps: halves.Deps{Kube: kc}}, log: hclog.NewNullLogger()}
			exp := export(tc.model, tc.proxy)
			port := ""
			if tc.model == cert {
				port = "the transport port at "
			}
			addr, _, err := e.address(t.Context(), exp)
			status, reason, msg := addressCondition(exp, addr, port, err)
			if status != tc.wantStatus || reason != tc.wantReason || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("AddressResolved = %s %s %q, want %s %s containing %q", status, reason, msg, tc.wantStatus, tc.wantReason, tc.wantMsg)
			}
		})
	}
	if got := addressReason(errors.New("failed to read service: etcd timeout")); got != v1alpha1.ReasonLoadBalancerPending {
		t.Errorf("an API error reading the Service: %s, want LoadBalancerPending (retried)", got)
	}
}

// TestServerCondition: every reason of RemoteClusterServerEnabled.
func TestServerCondition(t *testing.T) {
	enable := export(v1alpha1.SecurityModelAPIKey, "")
	enable.Spec.EnableRemoteClusterServer = true
	for _, tc := range []struct {
		name           string
		exp            *v1alpha1.ClusterExport
		found, enabled bool
		want           metav1.ConditionStatus
		reason         string
	}{
		{"no Elasticsearch", export(v1alpha1.SecurityModelAPIKey, ""), false, false, metav1.ConditionFalse, v1alpha1.ReasonElasticsearchNotFound},
		{"enabled", export(v1alpha1.SecurityModelAPIKey, ""), true, true, metav1.ConditionTrue, v1alpha1.ReasonServerEnabled},
		{"disabled, the user enables it", export(v1alpha1.SecurityModelAPIKey, ""), true, false, metav1.ConditionFalse, v1alpha1.ReasonServerDisabled},
		{"disabled, the agent enables it", enable, true, false, metav1.ConditionFalse, v1alpha1.ReasonServerEnabling},
		{"enabled, nothing to do", enable, true, true, metav1.ConditionTrue, v1alpha1.ReasonServerEnabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, reason, msg := serverCondition(tc.exp, tc.found, tc.enabled)
			if status != tc.want || reason != tc.reason || msg == "" {
				t.Fatalf("RemoteClusterServerEnabled = %s %s %q, want %s %s", status, reason, msg, tc.want, tc.reason)
			}
		})
	}
}

// TestKeyFailureReason: the reasons of KeysManaged when managing a link's keys failed.
func TestKeyFailureReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&elastic.APIError{Status: 503, Type: "unavailable_shards_exception"}, v1alpha1.ReasonElasticsearchUnavailable},
		{&elastic.APIError{Status: 401, Type: "security_exception"}, v1alpha1.ReasonElasticsearchUserPending},
		{&elastic.APIError{Status: 403, Type: "security_exception"}, v1alpha1.ReasonElasticsearchForbidden},
		{&elastic.APIError{Status: 400, Type: "illegal_argument_exception"}, v1alpha1.ReasonAPIKeyFailed},
		{errors.New("conflict writing a Secret"), ""},
	} {
		if got := keyFailureReason(tc.err); got != tc.want {
			t.Errorf("keyFailureReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestCertificateModelCondition: both reasons of CertificateModelEnabled, by the agent setting.
func TestCertificateModelCondition(t *testing.T) {
	exp := export(v1alpha1.SecurityModelCertificate, "")
	for on, want := range map[bool]string{true: v1alpha1.ReasonCertificateModelAllowed, false: v1alpha1.ReasonCertificateModelDisabled} {
		e := &Exporter{cfg: Config{CertificateModel: on}}
		if c := e.certificateModelCondition(exp); c.Reason != want || (c.Status == metav1.ConditionTrue) != on {
			t.Errorf("certificateModel.enabled=%v: %s %s, want %s", on, c.Status, c.Reason, want)
		}
	}
}

// TestConsumerTransportCA: a certificate-model import request without the consumer's transport
// CA, or with anything but one self-signed CA, is refused with a named reason.
func TestConsumerTransportCA(t *testing.T) {
	now := time.Now()
	ca := selfSignedPEM(t, true, now)
	exp := export(v1alpha1.SecurityModelCertificate, "")
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"one self-signed CA", ca, ""},
		{"none sent", nil, v1alpha1.ReasonTransportCAMissing},
		{"not PEM", []byte("junk"), v1alpha1.ReasonInvalidTransportCA},
		{"two CAs", append(append([]byte{}, ca...), selfSignedPEM(t, true, now)...), v1alpha1.ReasonInvalidTransportCA},
		{"not a CA", selfSignedPEM(t, false, now), v1alpha1.ReasonInvalidTransportCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ref := consumerTransportCA(exp, tc.bundle, now)
			switch {
			case tc.want == "" && (ref != nil || got == nil):
				t.Fatalf("refused %v", ref)
			case tc.want != "" && (ref == nil || ref.Reason != tc.want):
				t.Fatalf("got %v, want a refusal %s", ref, tc.want)
			}
		})
	}
}

func selfSignedPEM(t *testing.T, isCA bool, now time.Time) []byte {
	t.Helper()
	return testenv.New(t, testenv.Spec{CN: "transport-ca", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: isCA, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}).PEM()
}
