package dist_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/deploy/dist"
)

func build(t *testing.T, out string) []dist.Archive {
	t.Helper()
	license := filepath.Join(t.TempDir(), "LICENSE")
	if err := os.WriteFile(license, []byte("Apache License\nVersion 2.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	archives, err := dist.Build(ctx, dist.Config{
		Version: "1.2.3", Package: "../image/testdata/standin", Dir: ".", VersionVar: "main.version",
		OutDir: out, License: license, Targets: []dist.Target{{OS: "linux", Arch: "arm64"}, {OS: "darwin", Arch: "amd64"}},
		URL: "https://example.com/v1.2.3/{{.Name}}",
	})
	if err != nil {
		t.Fatal(err)
	}
	return archives
}

// TestBuild checks the archives' contents, SHA256SUMS against the files, the krew manifest
// against both, and that a second build is byte for byte the same.
func TestBuild(t *testing.T) {
	out := t.TempDir()
	archives := build(t, out)
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range archives {
		data, err := os.ReadFile(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		if !strings.Contains(string(sums), hex.EncodeToString(h[:])+"  "+a.Name+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", a.Name, sums)
		}
		files := untar(t, data)
		if len(files) != 2 || !strings.HasPrefix(files["LICENSE"].data, "Apache License") || len(files["agentctl"].data) == 0 {
			t.Errorf("%s holds %v, want LICENSE and agentctl", a.Name, keys(files))
		}
		if files["agentctl"].mode != 0o755 {
			t.Errorf("%s: agentctl mode %o, want 755", a.Name, files["agentctl"].mode)
		}
	}

	raw, err := os.ReadFile(filepath.Join(out, "ecklink.krew.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var plugin struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct{ Name string }
		Spec       struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Caveats          string `json:"caveats"`
			Platforms        []struct {
				Selector struct{ MatchLabels map[string]string } `json:"selector"`
				URI      string                                  `json:"uri"`
				SHA256   string                                  `json:"sha256"`
				Bin      string                                  `json:"bin"`
				Files    []struct{ From, To string }             `json:"files"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &plugin); err != nil {
		t.Fatalf("krew manifest: %v\n%s", err, raw)
	}
	if plugin.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || plugin.Kind != "Plugin" || plugin.Metadata.Name != "ecklink" || plugin.Spec.Version != "v1.2.3" || len(plugin.Spec.Platforms) != 2 {
		t.Fatalf("krew manifest %+v", plugin)
	}
	for i, p := range plugin.Spec.Platforms {
		a := archives[i]
		if p.Selector.MatchLabels["os"] != a.OS || p.Selector.MatchLabels["arch"] != a.Arch || p.SHA256 != a.SHA256 ||
			p.URI != "https://example.com/v1.2.3/"+a.Name || p.Bin != "kubectl-ecklink" || p.Files[0].From != "agentctl" || p.Files[0].To != "kubectl-ecklink" {
			t.Errorf("platform %d: %+v, want %s/%s %s", i, p, a.OS, a.Arch, a.SHA256)
		}
	}

	again := build(t, t.TempDir())
	for i := range archives {
		if archives[i].SHA256 != again[i].SHA256 {
			t.Errorf("%s differs between two builds", archives[i].Name)
		}
	}
}

type entry struct {
	mode int64
	data string
}

func untar(t *testing.T, data []byte) map[string]entry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = entry{mode: h.Mode, data: string(b)}
	}
}

func keys(m map[string]entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
