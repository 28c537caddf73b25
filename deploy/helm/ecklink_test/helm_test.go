// Package ecklink_test tests the ecklink chart with the real helm binary: golden renderings,
// schema rejections, lint, and an install into a real kube-apiserver whose RBAC decides what the
// chart's ServiceAccount may do.
package ecklink_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/testbed"
)

// chart is the chart's path relative to this package.
const chart = "../ecklink"

// helm runs the helm binary from .cache/tools with its caches and config isolated in a
// temporary folder, and returns stdout; on failure the error holds stderr.
type helm struct {
	bin string
	env []string
}

// newHelm finds helm or skips the test.
func newHelm(t *testing.T) *helm {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, ".cache", "tools", "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("helm is not installed at %s: run `make tools`", bin)
	}
	home := t.TempDir()
	return &helm{bin: bin, env: append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)}
}

func (h *helm) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("failed to run helm %v: %w\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// template renders the chart as release "ecklink" in namespace ecklink-system, as a user's
// plain `helm template` does: no --kube-version, so helm assumes its default version.
func (h *helm) template(args ...string) ([]byte, error) {
	return h.run(context.Background(), append([]string{"template", "ecklink", chart,
		"--namespace", "ecklink-system"}, args...)...)
}
