package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/elastic"
)

// kubeletVolume lays out a ConfigMap volume as the kubelet does: the data in a timestamped
// folder, ..data a symlink to it, and each key a symlink through ..data; update swaps ..data
// atomically.
type kubeletVolume struct {
	t   *testing.T
	dir string
	n   int
}

func (v *kubeletVolume) update(content string) {
	v.t.Helper()
	v.n++
	ts := filepath.Join(v.dir, "..2026_12_02_"+string(rune('a'+v.n)))
	if err := os.MkdirAll(ts, 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "config.yaml"), []byte(content), 0o644); err != nil {
		v.t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if v.n == 1 {
		if err := os.Symlink(filepath.Join("..data", "config.yaml"), filepath.Join(v.dir, "config.yaml")); err != nil {
			v.t.Fatal(err)
		}
	}
}

// TestWatchConfigFollowsConfigMapVolume: the chart mounts the config file from a ConfigMap; the
// agent applies a changed elasticsearchEndpoints when the kubelet swaps the volume's data,
// keeps the running endpoints when the new file is invalid, and lets flags win over the file.
func TestWatchConfigFollowsConfigMapVolume(t *testing.T) {
	vol := &kubeletVolume{t: t, dir: t.TempDir()}
	vol.update("elasticsearchEndpoints:\n  search/ccs: https://10.0.0.1:9200\n")
	file := filepath.Join(vol.dir, "config.yaml")
	cfg, err := config.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Environment, cfg.Namespace, cfg.File = "west", "ecklink", file
	cfg.FlagEndpoints = map[string]string{"logs/pinned": "https://10.9.9.9:9200"}
	eps, err := parseEndpoints(map[string]string{"search/ccs": "https://10.0.0.1:9200", "logs/pinned": "https://10.9.9.9:9200"})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := elastic.NewResolver(elastic.ResolverConfig{Kube: fake.NewClientset(), Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: hclog.NewNullLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.watchConfig(resolver)(ctx) }()
	time.Sleep(time.Second) // the watcher notes the file's state when it starts
	defer func() {
		cancel()
		<-done
	}()
	ccs, pinned := elastic.Target{Namespace: "search", Name: "ccs"}, elastic.Target{Namespace: "logs", Name: "pinned"}
	wait := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: ccs %q pinned %q", what, resolver.URL(ccs), resolver.URL(pinned))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	vol.update("elasticsearchEndpoints:\n  search/ccs: https://10.0.0.2:9200\n  logs/pinned: https://10.0.0.3:9200\n")
	wait("reloaded after the kubelet's swap", func() bool { return resolver.URL(ccs) == "https://10.0.0.2:9200" })
	if got := resolver.URL(pinned); got != "https://10.9.9.9:9200" {
		t.Errorf("flag endpoint %q, want the flag's (flags win)", got)
	}

	vol.update("elasticsearchEndpoints:\n  search/ccs: ftp://nowhere\n")
	time.Sleep(5 * time.Second) // two polls
	if got := resolver.URL(ccs); got != "https://10.0.0.2:9200" {
		t.Errorf("after an invalid file: %q, want the last good endpoint", got)
	}
	vol.update("elasticsearchEndpoints:\n  search/ccs: https://10.0.0.4:9200\n")
	wait("reloaded after a valid file again", func() bool { return resolver.URL(ccs) == "https://10.0.0.4:9200" })
}
