package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
)

// esPort is a port of an exported Elasticsearch that peers dial: the remote cluster server
// (API-key model) or the transport port (certificate model).
type esPort struct {
	// service names ECK's Service of the port for an Elasticsearch; serverSuffix makes its TLS
	// server name there, <es><serverSuffix>.<namespace>.svc.
	service      func(es string) string
	serverSuffix string
	// port and portName are the target port of the Elasticsearch's Service, by number and by
	// ECK's name.
	port     int
	portName string
	// makeLB says, after "make it a LoadBalancer", how.
	makeLB string
}

var (
	remoteClusterPort = esPort{service: eck.RemoteClusterService, serverSuffix: "-es-remote-cluster", port: 9443, portName: "rcs"}
	transportPort     = esPort{service: eck.TransportService, serverSuffix: "-es-transport", port: 9300, portName: "tls-transport",
		makeLB: " (spec.transport.service of the Elasticsearch)"}
)

// address is where peers dial the exported Elasticsearch, and the TLS server name they send:
// the port of the export's security model (its remote cluster server, or with the certificate
// model its transport port).
func (e *Exporter) address(ctx context.Context, exp *v1alpha1.ClusterExport) (string, string, error) {
	return e.portAddress(ctx, exp, e.modelOf(exp).port())
}

// portAddress is where peers dial port p of exp's Elasticsearch, and the TLS server name they
// expect: spec.proxyAddress, else the load balancer of spec.service (default ECK's Service of
// the port: <es>-es-remote-cluster, which ECK >= 3.3 can make a LoadBalancer, or
// <es>-es-transport, headless unless spec.transport.service makes it a LoadBalancer), whose
// target port must be p's.
func (e *Exporter) portAddress(ctx context.Context, exp *v1alpha1.ClusterExport, p esPort) (string, string, error) {
	es := exp.Spec.ElasticsearchRef.Name
	serverName := exp.Spec.ServerName
	if serverName == "" {
		serverName = es + p.serverSuffix + "." + exp.Namespace + ".svc"
	}
	if exp.Spec.ProxyAddress != "" {
		return exp.Spec.ProxyAddress, serverName, nil
	}
	svcName := p.service(es)
	if exp.Spec.Service != nil {
		svcName = exp.Spec.Service.Name
	}
	svc, err := e.cfg.Kube.CoreV1().Services(exp.Namespace).Get(ctx, svcName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", addressErr(v1alpha1.ReasonServiceNotFound, "service %s not found", svcName)
	}
	if err != nil {
		return "", "", fmt.Errorf("failed to read service %s: %w", svcName, err)
	}
	addr, err := p.loadBalancerAddress(svc)
	return addr, serverName, err
}

// loadBalancerAddress reads host:port from a LoadBalancer Service whose port targets p.
func (p esPort) loadBalancerAddress(svc *corev1.Service) (string, error) {
	var port int32
	for _, sp := range svc.Spec.Ports {
		t := sp.TargetPort
		if t.IntValue() == p.port || t.String() == p.portName || (t.IntValue() == 0 && t.String() == "" && int(sp.Port) == p.port) {
			port = sp.Port
			break
		}
	}
	if port == 0 {
		return "", addressErr(v1alpha1.ReasonInvalidServicePort, "service %s has no port with targetPort %d (if you changed its port, set targetPort: %d)", svc.Name, p.port, p.port)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return "", fmt.Errorf("service %s is of type %s: set spec.proxyAddress, or make it a LoadBalancer%s", svc.Name, svc.Spec.Type, p.makeLB)
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		host := ing.Hostname
		if host == "" {
			host = ing.IP
		}
		if host != "" {
			return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
		}
	}
	return "", fmt.Errorf("service %s has no load balancer address yet", svc.Name)
}

// addressError is why the address peers dial is not known, with the AddressResolved reason
// that says so.
type addressError struct {
	reason string
	msg    string
}

func (e *addressError) Error() string { return e.msg }

func addressErr(reason, format string, args ...any) error {
	return &addressError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// addressReason is the AddressResolved reason of err: ServiceNotFound, InvalidServicePort, or
// LoadBalancerPending for anything else (no load balancer address yet, a Service that is not a
// LoadBalancer, an API error reading it).
func addressReason(err error) string {
	var ae *addressError
	if errors.As(err, &ae) {
		return ae.reason
	}
	return v1alpha1.ReasonLoadBalancerPending
}
