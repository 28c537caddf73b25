package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScanSecrets searches every agent log of w, the Kubernetes objects of its environments and extra
// texts for every secret value of the test bed (and token, a pairing token's secret). It returns
// where each was found, and a summary of what was searched; the search fails (a hit says why)
// when it lacks API keys, passwords, private keys or a kind in require ("signing-key")
// to search for.
func (w *World) ScanSecrets(ctx context.Context, token string, extra map[string][]byte, require ...string) ([]string, string, error) {
	secrets, err := w.collectSecrets(ctx, token)
	if err != nil {
		return nil, "", err
	}
	texts := map[string][]byte{}
	for k, v := range extra {
		texts[k] = v
	}
	logs, _ := filepath.Glob(filepath.Join(w.Dir, "*", "agent*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		texts["log "+strings.TrimPrefix(f, w.Dir+"/")] = b
	}
	for _, c := range w.Clusters {
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
	for _, kind := range append([]string{"api-key", "password", "private-key"}, require...) {
		if kinds[kind] == 0 {
			hits = append(hits, fmt.Sprintf("the search lacks secrets of kind %s: %v", kind, kinds))
		}
	}
	summary := fmt.Sprintf("searched %d secret values %v in %d texts (%.1f MiB): %d hits", len(secrets), kinds, len(texts), float64(scanned)/(1<<20), len(hits))
	return hits, summary, nil
}

// secret is one value that must never be shown, with what it is.
type secret struct{ what, value string }

// collectSecrets gathers every secret value of the test bed; token is the pairing token's
// secret, if agentctl made one.
func (w *World) collectSecrets(ctx context.Context, token string) ([]secret, error) {
	var out []secret
	add := func(what, v string) {
		if v = strings.TrimSpace(v); len(v) >= 12 {
			out = append(out, secret{what, v})
		}
	}
	if token != "" {
		add("token-secret", token)
	}
	for _, c := range w.Clusters {
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
			case strings.HasSuffix(s.Name, "-ecklink-user"):
				add("password of the agent's user in "+ref, string(s.Data["password"]))
			case s.Name == "ecklink-agent-ca" || strings.HasSuffix(s.Name, "-ca-internal"):
				addKeys(add, "private-key", ref, s.Data)
			case s.Name == "ecklink-signing-ca" || strings.HasSuffix(s.Name, "-ecklink-signing"):
				addKeys(add, "signing-key", ref, s.Data)
			}
		}
	}
	return out, nil
}

// addKeys adds the PEM body lines of every private key (".key" entries) in data as kind.
func addKeys(add func(what, v string), kind, ref string, data map[string][]byte) {
	for k, v := range data {
		if strings.HasSuffix(k, ".key") {
			for _, line := range pemBodyLines(v) {
				add(kind+" "+k+" of "+ref, line)
			}
		}
	}
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
func clusterTexts(ctx context.Context, c *Cluster) (map[string][]byte, error) {
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SecretScan is a Suite.Passed hook: after every test of the package passed, ScanSecrets must find
// no secret anywhere (require: more kinds the search must have, e.g. "signing-key").
func SecretScan(suite string, require ...string) func(*World) error {
	return func(w *World) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		hits, summary, err := w.ScanSecrets(ctx, "", nil, require...)
		switch {
		case err != nil:
			return fmt.Errorf("secret scan failed: %w", err)
		case len(hits) > 0:
			return fmt.Errorf("secret scan: %s\n%s", summary, strings.Join(hits, "\n"))
		}
		fmt.Printf("%s: secret scan after every scenario: %s\n", suite, summary)
		return nil
	}
}
