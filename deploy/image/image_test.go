package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ecklink/ecklink/deploy/image"
)

// buildStandin compiles testdata/standin twice (as agent and agentctl) the way the real build
// compiles the agent: static, stripped, version set by the linker.
func buildStandin(t *testing.T, version string) []image.File {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	files, err := image.GoBuild(ctx, image.GoBuildConfig{
		Dir: ".", OutDir: t.TempDir(), Version: version, VersionVar: "main.version",
		Programs: []image.Program{
			{Package: "./testdata/standin", Path: image.AgentPath},
			{Package: "./testdata/standin", Path: image.AgentctlPath},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestBuildWritesLoadableImage builds an image, writes the tarball, loads it back by tag and
// checks its config and file system, then runs the binary taken out of the image.
func TestBuildWritesLoadableImage(t *testing.T) {
	const version = "0.0.0-test"
	files := buildStandin(t, version)
	img, err := image.Build(image.Config{Version: version, Revision: "abc123", License: "Apache-2.0", Binaries: files})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := image.Tag(version)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tag.String(), "ghcr.io/ecklink/agent:0.0.0-test"; got != want {
		t.Errorf("tag = %s, want %s", got, want)
	}
	out := filepath.Join(t.TempDir(), "dist", "ecklink-agent-"+version+".tar")
	if err := image.WriteTarball(out, tag, img); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("tarball does not load: %v", err)
	}
	// The docker tarball carries no manifest media types (loaded back it is a Docker schema 2
	// manifest, the built one OCI), so compare what docker names the image by: its config.
	wantConfig, _ := img.ConfigName()
	if got, _ := loaded.ConfigName(); got != wantConfig {
		t.Errorf("loaded image id %s, built %s", got, wantConfig)
	}

	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cf, version)
	fsys := readFiles(t, loaded)
	checkFiles(t, fsys)

	if runtime.GOOS == "linux" {
		bin := filepath.Join(t.TempDir(), "agent")
		if err := os.WriteFile(bin, fsys[strings.TrimPrefix(image.AgentPath, "/")].data, 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatalf("binary from the image does not run: %v", err)
		}
		if want := "standin " + version + "\n"; string(got) != want {
			t.Errorf("binary prints %q, want %q (version not set by -ldflags -X?)", got, want)
		}
	}
}

func checkConfig(t *testing.T, cf *v1.ConfigFile, version string) {
	t.Helper()
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/agent"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/usr/local/bin/agent] and no cmd", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" || c.WorkingDir != "/" {
		t.Errorf("user %q workdir %q, want 65532:65532 and /", c.User, c.WorkingDir)
	}
	if !slices.Equal(c.Env, []string{"PATH=/usr/local/bin"}) {
		t.Errorf("env %q, want only PATH", c.Env)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("created %s, want the Unix epoch (reproducible)", cf.Created)
	}
	want := map[string]string{
		"org.opencontainers.image.title":    "ecklink-agent",
		"org.opencontainers.image.source":   "https://github.com/ecklink/ecklink",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.revision": "abc123",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if c.Labels["org.opencontainers.image.description"] == "" {
		t.Error("label org.opencontainers.image.description is empty")
	}
}

// file is one entry of the image's flattened file system.
type file struct {
	hdr  *tar.Header
	data []byte
}

func readFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = file{hdr: h, data: data}
	}
}

func checkFiles(t *testing.T, fsys map[string]file) {
	t.Helper()
	var names []string
	for n := range fsys {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"etc", "etc/group", "etc/passwd", "home", "home/nonroot", "tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/agent", "usr/local/bin/agentctl"}
	if !slices.Equal(names, want) {
		t.Errorf("image files %q, want exactly %q (no shell, no package manager)", names, want)
	}
	if p := string(fsys["etc/passwd"].data); !strings.Contains(p, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user 65532: %q", p)
	}
	if g := string(fsys["etc/group"].data); !strings.Contains(g, "nonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot group 65532: %q", g)
	}
	for _, n := range []string{"usr/local/bin/agent", "usr/local/bin/agentctl"} {
		if h := fsys[n].hdr; h == nil || h.Mode != 0o755 || h.Uid != 0 {
			t.Errorf("%s: header %+v, want mode 0755 owned by root", n, h)
		}
	}
	if h := fsys["tmp"].hdr; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp is not sticky and world-writable: %+v", h)
	}
}

// TestBuildIsReproducible builds twice from the same binaries and expects the same digest.
func TestBuildIsReproducible(t *testing.T) {
	files := []image.File{{Path: image.AgentPath, Source: writeFile(t, "agent", "binary")}}
	digest := func() v1.Hash {
		img, err := image.Build(image.Config{Version: "1.2.3", License: "Apache-2.0", Arch: "arm64", Binaries: files})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds differ: %s and %s", a, b)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBuildRejectsBadConfig names what is missing.
func TestBuildRejectsBadConfig(t *testing.T) {
	bin := writeFile(t, "agent", "binary")
	tests := []struct {
		name string
		cfg  image.Config
		want string
	}{
		{"no version", image.Config{License: "x", Binaries: []image.File{{Path: image.AgentPath, Source: bin}}}, "version is required"},
		{"no agent", image.Config{Version: "1", License: "x", Binaries: []image.File{{Path: image.AgentctlPath, Source: bin}}}, "no binary at the entrypoint /usr/local/bin/agent"},
		{"outside bin", image.Config{Version: "1", License: "x", Binaries: []image.File{{Path: image.AgentPath, Source: bin}, {Path: "/bin/sh", Source: bin}}}, `"/bin/sh" is not in /usr/local/bin`},
		{"missing file", image.Config{Version: "1", License: "x", Binaries: []image.File{{Path: image.AgentPath, Source: bin + "-gone"}}}, "failed to read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := image.Build(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestTagRejectsBadVersion keeps a bad --version from producing an untagged tarball.
func TestTagRejectsBadVersion(t *testing.T) {
	if _, err := image.Tag("not a tag"); err == nil {
		t.Error("Tag accepted a version with spaces")
	}
}
