package faults

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

	hits, summary, err := scanSecrets(ctx, ctl, map[string][]byte{"agentctl": ctlOut})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(summary)
	for _, h := range hits {
		t.Error(h)
	}
}

// scanSecrets searches every agent log, the Kubernetes objects of both environments and extra
// texts for every secret value of the test bed (and token, a pairing token's secret). It returns
// where each was found, and a summary of what was searched. TestMain runs it once more after
// every scenario of the package.
func scanSecrets(ctx context.Context, token string, extra map[string][]byte) ([]string, string, error) {
	secrets, err := collectSecrets(ctx, token)
	if err != nil {
		return nil, "", err
	}
	texts := map[string][]byte{}
	for k, v := range extra {
		texts[k] = v
	}
	logs, _ := filepath.Glob(filepath.Join(world.Dir, "*", "agent*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		texts["log "+strings.TrimPrefix(f, world.Dir+"/")] = b
	}
	for _, c := range world.Clusters {
		ct, err := clusterTexts(ctx, c)
		if err != nil {
			return nil, "", err
		}
		for name, b := range ct {
			texts[c.Name+" "+name] = b
		}
	}
	scanned := 0
	var hits []string
	for _, name := range sortedKeys(texts) {
		text := texts[name]
		scanned += len(text)
		for _, s := range secrets {
			if bytes.Contains(text, []byte(s.value)) {
				hits = append(hits, fmt.Sprintf("%s found in %s", s.what, name))
			}
		}
	}
	kinds := map[string]int{}
	for _, s := range secrets {
		kinds[strings.SplitN(s.what, " ", 2)[0]]++
	}
	if kinds["api-key"] == 0 || kinds["password"] == 0 || kinds["private-key"] == 0 {
		hits = append(hits, fmt.Sprintf("the search lacks a kind of secret: %v", kinds))
	}
	summary := fmt.Sprintf("searched %d secret values %v in %d texts (%.1f MiB): %d hits", len(secrets), kinds, len(texts), float64(scanned)/(1<<20), len(hits))
	return hits, summary, nil
}

// secret is one value that must never be shown, with what it is.
type secret struct{ what, value string }

// collectSecrets gathers every secret value of the test bed; token is the pairing token's
// secret, if agentctl made one.
func collectSecrets(ctx context.Context, token string) ([]secret, error) {
	var out []secret
	add := func(what, v string) {
		if v = strings.TrimSpace(v); len(v) >= 12 {
			out = append(out, secret{what, v})
		}
	}
	if token != "" {
		add("token-secret", token)
	}
	for _, c := range world.Clusters {
		for name, p := range c.Pods() {
			if p.Node() == nil {
				continue
			}
			for _, k := range p.Node().APIKeys() {
				s, ok := p.Node().APIKeySecret(k.ID)
				if !ok {
					continue
				}
				add("api-key secret of "+k.ID+" ("+c.Name+" "+name+")", s)
				add("api-key encoded "+k.ID+" ("+c.Name+" "+name+")", base64.StdEncoding.EncodeToString([]byte(k.ID+":"+s)))
			}
		}
		list, err := c.Env.Kube.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, s := range list.Items {
			ref := c.Name + " " + s.Namespace + "/" + s.Name
			switch {
			case strings.HasSuffix(s.Name, "-es-elastic-user") || strings.HasSuffix(s.Name, "-es-internal-users"):
				for k, v := range s.Data {
					add("password "+k+" of "+ref, string(v))
				}
			case s.Name == "ecklink-agent-ca" || strings.HasSuffix(s.Name, "-ca-internal"):
				for k, v := range s.Data {
					if strings.HasSuffix(k, ".key") {
						for _, line := range pemBodyLines(v) {
							add("private-key "+k+" of "+ref, line)
						}
					}
				}
			}
		}
	}
	return out, nil
}

// pemBodyLines returns the base64 lines of every PEM block in data.
func pemBodyLines(data []byte) []string {
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		enc := base64.StdEncoding.EncodeToString(b.Bytes)
		for len(enc) > 0 {
			n := min(64, len(enc))
			out = append(out, enc[:n])
			enc = enc[n:]
		}
	}
}

// clusterTexts renders what the Kubernetes API shows users: Events, ecklink objects, the agent's
// ConfigMaps.
func clusterTexts(ctx context.Context, c *harness.Cluster) (map[string][]byte, error) {
	out := map[string][]byte{}
	add := func(name string, v any, err error) error {
		if err != nil {
			return err
		}
		b, err := json.Marshal(v)
		out[name] = b
		return err
	}
	events, err := c.Env.Kube.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err := add("events", events, err); err != nil {
		return nil, err
	}
	rcs, err := c.CRDs.RemoteClusters().List(ctx, metav1.NamespaceAll, metav1.ListOptions{})
	if err := add("remoteclusters", rcs, err); err != nil {
		return nil, err
	}
	exps, err := c.CRDs.ClusterExports().List(ctx, metav1.NamespaceAll, metav1.ListOptions{})
	if err := add("clusterexports", exps, err); err != nil {
		return nil, err
	}
	peers, err := c.CRDs.Peers().List(ctx, metav1.NamespaceAll, metav1.ListOptions{})
	if err := add("peers", peers, err); err != nil {
		return nil, err
	}
	cms, err := c.Env.Kube.CoreV1().ConfigMaps(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var own []any
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "ecklink-") || strings.HasSuffix(cm.Name, "-ecklink-remote-ca") {
			own = append(own, cm)
		}
	}
	if err := add("configmaps", own, nil); err != nil {
		return nil, err
	}
	return out, nil
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
	tokenOut := run("pair", "token", "--kubeconfig", west.Env.AdminKubeconfig, "--ttl", "10m")
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
