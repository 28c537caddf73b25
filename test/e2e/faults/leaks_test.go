package faults

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestNoSecretLeaks runs a full scenario with the agents at debug level (a link, a key
// rotation, an access change, a CA with a new key, a pairing token, agentctl status and doctor,
// the link's removal), then collects every secret value the test bed holds, of this scenario and
// of every scenario before it in the package: the encoded value and secret of every API key the
// esim nodes ever issued (invalidated ones too), the passwords of the elastic and internal users,
// the private keys of the agent CAs and of ECK's CAs, and the pairing token's secret. It searches
// every agent log, every Kubernetes Event, every RemoteCluster, ClusterExport and Peer (whole
// objects, status included), the agent's ConfigMaps, and agentctl's output: zero hits.
func TestNoSecretLeaks(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	west := world.Clusters["west"]

	l := newLink(ctx, t, "leaks", "west-leaks", func(e *v1alpha1.ClusterExport) {
		e.Spec.APIKey = &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 3 * time.Minute},
			RotateBefore: &metav1.Duration{Duration: 150 * time.Second}}
	})
	probe := l.connect(ctx, t, 2*time.Minute)
	first := l.requireNoLeakedKey(ctx, t, time.Minute)
	waitFor(ctx, t, 2*time.Minute, "the key rotated", func() (bool, string) {
		k, _ := l.remotePod.Node().APIKey(first.ID)
		return k.Invalidated, describeKeys(l.keys())
	})
	if err := west.UpdateClusterExport(ctx, l.ns, "logs", func(exp *v1alpha1.ClusterExport) {
		exp.Spec.Access.Search[0].Names = append(exp.Spec.Access.Search[0].Names, "metrics-*")
	}); err != nil {
		t.Fatal(err)
	}
	if err := west.Env.Kube.CoreV1().Secrets(l.ns).Delete(ctx, "logs-es-transport-ca-internal", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second)
	probe.Stop()
	l.connect(ctx, t, 2*time.Minute).Stop()

	ctl, ctlOut := agentctlOutputs(ctx, t, l)
	l.deleteLink(ctx, t)
	time.Sleep(2 * resync) // the removal's logs and events

	hits, summary, err := world.ScanSecrets(ctx, ctl, map[string][]byte{"agentctl": ctlOut})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(summary)
	for _, h := range hits {
		t.Error(h)
	}
}

// agentctlOutputs builds agentctl and runs what an operator would: a pairing token for west, then
// status and doctor in both environments. It returns the token's secret and everything printed
// except the token itself.
func agentctlOutputs(ctx context.Context, t *testing.T, l *link) (string, []byte) {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "agent", "cmd", "agentctl")); err != nil {
		t.Log("agentctl does not exist: its output is not searched")
		return "", nil
	}
	bin := filepath.Join(t.TempDir(), "agentctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./agent/cmd/agentctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("failed to build agentctl: %v\n%s", err, out)
	}
	run := func(args ...string) []byte {
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		t.Logf("agentctl %s: exit %v, %d bytes", strings.Join(args[:min(2, len(args))], " "), err, stdout.Len()+stderr.Len())
		return append(stdout.Bytes(), stderr.Bytes()...)
	}
	west, east := l.remote, l.local
	tokenOut := run("pair", "token", "--kubeconfig", west.Env.AdminKubeconfig, "--peer", "east", "--ttl", "10m")
	token := ""
	first, _, _ := strings.Cut(string(tokenOut), "\n") // the token alone on stdout's first line
	if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(first)); err == nil {
		var tok struct{ Secret string }
		if json.Unmarshal(raw, &tok) == nil {
			token = tok.Secret
		}
	}
	if token == "" {
		t.Errorf("agentctl pair token printed no token (%d bytes)", len(tokenOut))
	}
	var all []byte
	endpoints := func(c *harness.Cluster) []string {
		var out []string
		for k, v := range c.Endpoints() {
			out = append(out, k+"="+v)
		}
		return out
	}
	for _, c := range []*harness.Cluster{west, east} {
		for _, format := range []string{"table", "json"} {
			all = append(all, run("status", "--kubeconfig", c.Env.AdminKubeconfig, "-o", format)...)
		}
	}
	doctor := []string{"doctor", "--kubeconfig", east.Env.AdminKubeconfig, "--peer-kubeconfig", west.Env.AdminKubeconfig, "-o", "json"}
	for _, e := range endpoints(east) {
		doctor = append(doctor, "--elasticsearch-endpoint", e)
	}
	for _, e := range endpoints(west) {
		doctor = append(doctor, "--peer-elasticsearch-endpoint", e)
	}
	all = append(all, run(doctor...)...)
	all = append(all, run("doctor", "--kubeconfig", east.Env.AdminKubeconfig)...)
	return token, all
}
