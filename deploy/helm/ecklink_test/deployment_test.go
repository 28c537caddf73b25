package ecklink_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/deploy/image"
)

func deployment(t *testing.T, objs map[string]any) *appsv1.Deployment {
	t.Helper()
	d, ok := objs["Deployment/ecklink-system/ecklink"].(*appsv1.Deployment)
	if !ok {
		t.Fatal("no Deployment ecklink-system/ecklink in the rendering")
	}
	return d
}

// TestDeploymentArgsAreAgentConfig parses the rendered container args with the agent's own flag
// set and validates the result, so the chart cannot pass a flag the agent does not have or a
// value it rejects.
func TestDeploymentArgsAreAgentConfig(t *testing.T) {
	h := newHelm(t)
	t.Setenv("POD_NAMESPACE", "ecklink-system")
	tests := []struct {
		name  string
		check func(t *testing.T, c config.Config)
	}{
		{"default", func(t *testing.T, c config.Config) {
			if c.Environment != "west" || c.Namespace != "ecklink-system" || !c.LeaderElection.Enabled ||
				c.LeaderElection.LeaseName != "ecklink-agent" || c.LogFormat != "json" || len(c.WatchNamespaces) != 0 ||
				c.CertificateModel.Enabled || c.AllowInsecureElasticsearch {
				t.Errorf("config %+v", c)
			}
		}},
		{"custom", func(t *testing.T, c config.Config) {
			if c.Environment != "eu-west" || !slices.Equal(c.WatchNamespaces, []string{"search", "logging"}) ||
				!slices.Equal(c.AdvertiseEndpoints, []string{"ecklink.eu-west.example.com:443"}) ||
				c.LeaderElection.LeaseName != "ecklink-eu-west" || c.LeaderElection.LeaseDuration.String() != "30s" ||
				c.HeartbeatInterval.String() != "5s" || c.ResyncInterval.String() != "1m0s" || c.LeafValidity.String() != "12h0m0s" ||
				c.ElasticsearchEndpoints["search/ccs"] != "https://ccs.search.example.com:9200" || c.LogLevel != "debug" ||
				!c.CertificateModel.Enabled {
				t.Errorf("config %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment(t, render(t, h, tt.name))
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			flags := config.BindFlags(fs)
			if err := fs.Parse(d.Spec.Template.Spec.Containers[0].Args); err != nil {
				t.Fatalf("the agent rejects the chart's flags: %v", err)
			}
			cfg, err := flags.Resolve()
			if err != nil {
				t.Fatalf("the agent rejects the chart's configuration: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestDeploymentDefaults checks what the golden file could lose to a careless -update: the
// restricted pod security settings, probes, ports, and the image `make image` builds.
func TestDeploymentDefaults(t *testing.T) {
	h := newHelm(t)
	d := deployment(t, render(t, h, "default"))
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]

	chartYAML, err := os.ReadFile(chart + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
		t.Fatal(err)
	}
	if want := image.Repository + ":" + meta.AppVersion; c.Image != want {
		t.Errorf("image %s, want %s (what `make image` tags)", c.Image, want)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	// Standbys are ready (they serve the peer port and answer Unavailable), so a rolling update
	// that never drops below the desired count works and keeps a standby during the update.
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v, want RollingUpdate with maxUnavailable 0", d.Spec.Strategy)
	}

	psc := spec.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != image.UID ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v, want runAsNonRoot, runAsUser %d, seccomp RuntimeDefault", psc, image.UID)
	}
	sc := c.SecurityContext
	if sc == nil || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v, want read-only root, no privilege escalation, drop ALL", sc)
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["grpc"] != 9400 || ports["metrics"] != 9401 {
		t.Errorf("ports %v, want grpc 9400 and metrics 9401", ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "metrics" {
		t.Errorf("readiness probe %+v, want GET /readyz on metrics", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "metrics" {
		t.Errorf("liveness probe %+v, want GET /healthz on metrics", p)
	}
	if len(c.Env) == 0 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil ||
		c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("env %+v, want POD_NAMESPACE from metadata.namespace", c.Env)
	}
	if got := c.Resources.Requests.Cpu().String() + "/" + c.Resources.Requests.Memory().String() + "/" + c.Resources.Limits.Memory().String(); got != "50m/64Mi/256Mi" {
		t.Errorf("resources cpu/memory request/memory limit %s, want 50m/64Mi/256Mi", got)
	}
	if a := spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("affinity %+v, want one preferred (soft) pod anti-affinity term", a)
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--leader-elect=true") }) {
		t.Errorf("args %q lack --leader-elect=true", c.Args)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }
