package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/test/testbed"
)

// ChartRelease is the Helm release name the harness installs.
const ChartRelease = "ecklink"

// chartConfigMap is the chart's config file ConfigMap of release ChartRelease, and its key.
const (
	chartConfigMap = ChartRelease + "-config"
	chartConfigKey = "config.yaml"
)

// Helm is the helm binary `make tools` installs.
func Helm() (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "tools", "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("helm not found at %s (run `make tools`): %w", bin, err)
	}
	return bin, nil
}

// HeadChart is this tree's chart, deploy/helm/ecklink.
func HeadChart() (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "deploy", "helm", "ecklink"), nil
}

// RunHelm runs helm against the environment as its admin, with helm's caches in the
// environment's folder, and returns the combined output.
func RunHelm(ctx context.Context, env *testbed.Environment, args ...string) ([]byte, error) {
	helm, err := Helm()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, helm, append(args, "--kubeconfig", env.AdminKubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(env.Dir, "helm-cache"), "HELM_CONFIG_HOME="+filepath.Join(env.Dir, "helm-config"),
		"HELM_DATA_HOME="+filepath.Join(env.Dir, "helm-data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("failed to run helm %v in %s: %w\n%s", args, env.Name, err, out)
	}
	return out, nil
}

// InstallChart installs deploy/helm/ecklink with real helm into the environment's agent
// namespace (CRDs, ServiceAccount, RBAC, Services, Deployment: the test bed has no kubelet, so
// the Deployment's pods never run; the harness runs the agents as processes instead).
func InstallChart(ctx context.Context, env *testbed.Environment, args ...string) error {
	chart, err := HeadChart()
	if err != nil {
		return err
	}
	return InstallChartFrom(ctx, env, chart, args...)
}

// InstallChartFrom installs (or upgrades to) the chart in folder chart, e.g. a release's.
func InstallChartFrom(ctx context.Context, env *testbed.Environment, chart string, args ...string) error {
	_, err := RunHelm(ctx, env, append([]string{"upgrade", "--install", ChartRelease, chart,
		"--namespace", AgentNamespace, "--create-namespace", "--set", "environment=" + env.Name, "--timeout", "2m"}, args...)...)
	return err
}

// ChartServiceAccount returns a kubeconfig for the chart's ServiceAccount: agents run with
// exactly the permissions the chart grants.
func ChartServiceAccount(args ...string) func(ctx context.Context, env *testbed.Environment) (string, error) {
	return func(ctx context.Context, env *testbed.Environment) (string, error) {
		chart, err := HeadChart()
		if err != nil {
			return "", err
		}
		return chartServiceAccount(ctx, env, chart, args...)
	}
}

// ChartServiceAccountFrom is ChartServiceAccount with the chart of folder chart per environment
// (by name; HEAD's chart for the others).
func ChartServiceAccountFrom(charts map[string]string, args ...string) func(ctx context.Context, env *testbed.Environment) (string, error) {
	return func(ctx context.Context, env *testbed.Environment) (string, error) {
		chart, ok := charts[env.Name]
		if !ok {
			var err error
			if chart, err = HeadChart(); err != nil {
				return "", err
			}
		}
		return chartServiceAccount(ctx, env, chart, args...)
	}
}

func chartServiceAccount(ctx context.Context, env *testbed.Environment, chart string, args ...string) (string, error) {
	if err := InstallChartFrom(ctx, env, chart, args...); err != nil {
		return "", err
	}
	return env.ServiceAccountKubeconfig(ctx, AgentNamespace, ChartRelease, 24*time.Hour)
}

// UseChartConfig makes the agent's config file come from the chart, as in a pod: from now on
// the endpoints of the simulated Elasticsearch pods are set as the chart's
// elasticsearchEndpoints with `helm upgrade --reset-then-reuse-values`, and the harness plays the kubelet,
// writing the chart ConfigMap's config.yaml over the agent's config file (atomically, as the
// kubelet swaps a ConfigMap volume's files). The agent is not restarted: it must reload.
func (c *Cluster) UseChartConfig(ctx context.Context, chart string) error {
	c.mu.Lock()
	c.chart = chart
	c.mu.Unlock()
	return c.configFromChart(ctx, chart)
}

// configFromChart sets the endpoints as chart values and projects the ConfigMap.
func (c *Cluster) configFromChart(ctx context.Context, chart string) error {
	endpoints, err := json.Marshal(c.Endpoints())
	if err != nil {
		return fmt.Errorf("failed to encode endpoints: %w", err)
	}
	if _, err := RunHelm(ctx, c.Env, "upgrade", ChartRelease, chart, "--namespace", AgentNamespace, "--reset-then-reuse-values",
		"--set-json", "elasticsearchEndpoints="+string(endpoints), "--timeout", "2m"); err != nil {
		return err
	}
	return c.ProjectChartConfig(ctx)
}

// ProjectChartConfig writes the chart ConfigMap's config file over the agent's, as the kubelet
// updates a mounted ConfigMap.
func (c *Cluster) ProjectChartConfig(ctx context.Context) error {
	cm, err := c.Env.Kube.CoreV1().ConfigMaps(AgentNamespace).Get(ctx, chartConfigMap, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to read the chart's config ConfigMap: %w", err)
	}
	data, ok := cm.Data[chartConfigKey]
	if !ok {
		return fmt.Errorf("ConfigMap %s has no key %s", chartConfigMap, chartConfigKey)
	}
	tmp := c.configPath + ".kubelet"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("failed to write agent config: %w", err)
	}
	return os.Rename(tmp, c.configPath)
}
