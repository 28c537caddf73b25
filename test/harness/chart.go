package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ecklink/ecklink/test/testbed"
)

// ChartRelease is the Helm release name the harness installs.
const ChartRelease = "ecklink"

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

// InstallChart installs deploy/helm/ecklink with real helm into the environment's agent
// namespace (CRDs, ServiceAccount, RBAC, Services, Deployment: the test bed has no kubelet, so
// the Deployment's pods never run; the harness runs the agents as processes instead).
func InstallChart(ctx context.Context, env *testbed.Environment, args ...string) error {
	helm, err := Helm()
	if err != nil {
		return err
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	cmdArgs := append([]string{"upgrade", "--install", ChartRelease, filepath.Join(root, "deploy", "helm", "ecklink"),
		"--namespace", AgentNamespace, "--create-namespace", "--kubeconfig", env.AdminKubeconfig,
		"--set", "environment=" + env.Name, "--timeout", "2m"}, args...)
	cmd := exec.CommandContext(ctx, helm, cmdArgs...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(env.Dir, "helm-cache"), "HELM_CONFIG_HOME="+filepath.Join(env.Dir, "helm-config"),
		"HELM_DATA_HOME="+filepath.Join(env.Dir, "helm-data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("failed to install the chart into %s: %w\n%s", env.Name, err, out)
	}
	return nil
}

// ChartServiceAccount returns a kubeconfig for the chart's ServiceAccount: agents run with
// exactly the permissions the chart grants.
func ChartServiceAccount(args ...string) func(ctx context.Context, env *testbed.Environment) (string, error) {
	return func(ctx context.Context, env *testbed.Environment) (string, error) {
		if err := InstallChart(ctx, env, args...); err != nil {
			return "", err
		}
		return env.ServiceAccountKubeconfig(ctx, AgentNamespace, ChartRelease, 24*time.Hour)
	}
}
