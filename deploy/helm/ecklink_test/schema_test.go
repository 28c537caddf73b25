package ecklink_test

import (
	"context"
	"strings"
	"testing"
)

// TestValuesRejected checks that bad values fail before anything is rendered, with a message
// that names the offending key.
func TestValuesRejected(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
		want []string // every string must appear in the error
	}{
		{"missing environment", nil, []string{"missing property 'environment'"}},
		{"environment not a DNS label", []string{"--set", "environment=Bad_Name"}, []string{"/environment", "Bad_Name", "does not match pattern"}},
		{"zero replicas", []string{"--set", "environment=x", "--set", "replicas=0"}, []string{"/replicas", "minimum"}},
		{"fractional replicas", []string{"--set", "environment=x", "--set", "replicas=1.5"}, []string{"/replicas"}},
		{"unknown service type", []string{"--set", "environment=x", "--set", "service.type=Foo"}, []string{"/service/type", "ClusterIP", "NodePort", "LoadBalancer"}},
		{"misspelled top-level key", []string{"--set", "environment=x", "--set", "replica=3"}, []string{"additional properties 'replica' not allowed"}},
		{"misspelled nested key", []string{"--set", "environment=x", "--set", "service.annotation.a=b"}, []string{"/service", "additional properties 'annotation' not allowed"}},
		{"namespaced rbac without namespaces", []string{"--set", "environment=x", "--set", "rbac.namespaced=true"}, []string{"rbac.namespaced=true requires watchNamespaces"}},
		{"namespaced rbac not a bool", []string{"--set", "environment=x", "--set-string", "rbac.namespaced=yes"}, []string{"/rbac/namespaced", "want boolean"}},
		{"port out of range", []string{"--set", "environment=x", "--set", "ports.grpc=70000"}, []string{"/ports/grpc", "maximum"}},
		{"service port zero", []string{"--set", "environment=x", "--set", "service.port=0"}, []string{"/service/port", "minimum"}},
		{"unknown log level", []string{"--set", "environment=x", "--set", "logLevel=verbose"}, []string{"/logLevel", "info"}},
		{"watch namespace not a DNS label", []string{"--set", "environment=x", "--set", "watchNamespaces={Team_A}"}, []string{"/watchNamespaces/0", "Team_A"}},
		{"resources not an object", []string{"--set", "environment=x", "--set", "resources=lots"}, []string{"/resources", "want object"}},
		{"image tag not a string", []string{"--set", "environment=x", "--set", "image.tag=1"}, []string{"/image/tag", "want string"}},
		{"bad duration", []string{"--set", "environment=x", "--set", "heartbeatInterval=10 seconds"}, []string{"/heartbeatInterval"}},
		{"advertise endpoint without port", []string{"--set", "environment=x", "--set", "advertiseEndpoints={agent.example.com}"}, []string{"/advertiseEndpoints/0"}},
		{"replicas without leader election", []string{"--set", "environment=x", "--set", "leaderElection.enabled=false"}, []string{"leaderElection.enabled=false requires replicas: 1"}},
		{"bad probe interval", []string{"--set", "environment=x", "--set", "probe.interval=often"}, []string{"/probe/interval"}},
		{"runbook URL with an anchor", []string{"--set", "environment=x", "--set", "prometheusRule.runbookBaseURL=https://x.example/r.md#top"}, []string{"/prometheusRule/runbookBaseURL"}},
		{"misspelled dashboard key", []string{"--set", "environment=x", "--set", "grafanaDashboard.enable=true"}, []string{"/grafanaDashboard", "additional properties 'enable' not allowed"}},
		{"existing service account without name", []string{"--set", "environment=x", "--set", "serviceAccount.create=false"}, []string{"serviceAccount.name is required"}},
		{"crds.keep not a bool", []string{"--set", "environment=x", "--set-string", "crds.keep=no"}, []string{"/crds/keep", "want boolean"}},
		{"network policy peer without a selector", []string{"--set", "environment=x", "--set", "networkPolicy.ingress.peers[0].cidr=10.0.0.0/8"},
			[]string{"/networkPolicy/ingress/peers/0", "additional properties 'cidr' not allowed"}},
		{"extra volume mount without a path", []string{"--set", "environment=x", "--set", "extraVolumeMounts[0].name=data"}, []string{"/extraVolumeMounts/0", "mountPath"}},
		{"http endpoint without allowInsecureElasticsearch", []string{"--set", "environment=x", "--set", "elasticsearchEndpoints.search/ccs=http://ccs.example.com:9200"},
			[]string{"elasticsearchEndpoints[search/ccs]", "http://ccs.example.com:9200 is http", "allowInsecureElasticsearch=true"}},
		{"certificate model not a bool", []string{"--set", "environment=x", "--set-string", "certificateModel.enabled=yes"}, []string{"/certificateModel/enabled", "want boolean"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.template(tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error naming %q", tt.args, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestValuesAccepted renders variants that must stay valid.
func TestValuesAccepted(t *testing.T) {
	h := newHelm(t)
	tests := map[string][]string{
		"one replica without leader election": {"--set", "environment=x", "--set", "replicas=1", "--set", "leaderElection.enabled=false"},
		"node port":                           {"--set", "environment=x", "--set", "service.type=NodePort", "--set", "service.nodePort=30400"},
		"ipv6 endpoint and digest": {"--set", "environment=x", "--set", "advertiseEndpoints={[2001:db8::1]:9400}",
			"--set", "image.digest=sha256:" + strings.Repeat("a", 64)},
		"existing service account": {"--set", "environment=x", "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=agent"},
		"no rbac":                  {"--set", "environment=x", "--set", "rbac.create=false"},
		"parent chart globals":     {"--set", "environment=x", "--set", "global.imageRegistry=r.example.com"},
		"probe off":                {"--set", "environment=x", "--set-string", "probe.interval=0"},
		"http endpoint allowed": {"--set", "environment=x", "--set", "elasticsearchEndpoints.search/ccs=http://127.0.0.1:9200",
			"--set", "allowInsecureElasticsearch=true"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := h.template(args...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestLint runs `helm lint --strict` (as make verify does, plus --strict) on the defaults and on
// the custom values.
func TestLint(t *testing.T) {
	h := newHelm(t)
	for name, args := range map[string][]string{
		"default": {"--set", "environment=lint"},
		"custom":  {"--values", "testdata/custom-values.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := h.run(context.Background(), append([]string{"lint", "--strict", chart}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}
