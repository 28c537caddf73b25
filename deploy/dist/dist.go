// Package dist builds agentctl's release archives: one tar.gz per OS and architecture with the
// static binary and the LICENSE, a SHA256SUMS file, and the krew manifest that installs it as
// the kubectl plugin `kubectl ecklink`. Archives are reproducible: sorted entries, fixed owner,
// modes and modification time.
package dist

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Targets are the platforms `make dist` builds.
var Targets = []Target{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// Target is one GOOS/GOARCH.
type Target struct{ OS, Arch string }

//go:embed krew.yaml.tmpl
var krewTemplate string

// Config configures Build.
type Config struct {
	// Version is written into VersionVar and names the archives. Required.
	Version string
	// Package is agentctl's main package, resolved in Dir. Required.
	Package, Dir string
	// VersionVar is the variable -ldflags -X sets to Version.
	VersionVar string
	// OutDir receives the archives, SHA256SUMS and ecklink.krew.yaml. Required.
	OutDir string
	// License is the LICENSE file put in every archive. Required.
	License string
	// Targets to build; Targets if empty.
	Targets []Target
	// Created is every archive entry's modification time.
	Created time.Time
	// URL is the download URL of an archive, with {{.Name}} for its file name
	// (for the krew manifest).
	URL string
}

// Archive is one built archive.
type Archive struct {
	OS, Arch, Name, Path, SHA256, URL string
}

// Build compiles agentctl for every target and writes the archives, SHA256SUMS and the krew
// manifest.
func Build(ctx context.Context, cfg Config) ([]Archive, error) {
	if cfg.Version == "" || cfg.Package == "" || cfg.OutDir == "" || cfg.License == "" {
		return nil, errors.New("failed to build the release: Version, Package, OutDir and License are required")
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = Targets
	}
	license, err := os.ReadFile(cfg.License)
	if err != nil {
		return nil, fmt.Errorf("failed to read the license: %w", err)
	}
	url, err := template.New("url").Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the download URL: %w", err)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", cfg.OutDir, err)
	}
	tmp, err := os.MkdirTemp("", "ecklink-dist-")
	if err != nil {
		return nil, fmt.Errorf("failed to create a build folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	var out []Archive
	for _, t := range cfg.Targets {
		bin := filepath.Join(tmp, t.OS+"-"+t.Arch, "agentctl")
		if err := goBuild(ctx, cfg, t, bin); err != nil {
			return nil, err
		}
		a := Archive{OS: t.OS, Arch: t.Arch, Name: fmt.Sprintf("agentctl-%s-%s-%s.tar.gz", cfg.Version, t.OS, t.Arch)}
		a.Path = filepath.Join(cfg.OutDir, a.Name)
		if a.SHA256, err = writeArchive(a.Path, bin, license, cfg.Created); err != nil {
			return nil, err
		}
		var u strings.Builder
		if err := url.Execute(&u, a); err != nil {
			return nil, fmt.Errorf("failed to render the download URL: %w", err)
		}
		a.URL = u.String()
		out = append(out, a)
	}
	if err := writeSums(filepath.Join(cfg.OutDir, "SHA256SUMS"), out); err != nil {
		return nil, err
	}
	if err := writeKrew(filepath.Join(cfg.OutDir, "ecklink.krew.yaml"), cfg.Version, out); err != nil {
		return nil, err
	}
	return out, nil
}

// goBuild compiles a static, stripped, reproducible binary for t.
func goBuild(ctx context.Context, cfg Config, t Target, out string) error {
	ldflags := "-s -w -buildid="
	if cfg.VersionVar != "" {
		ldflags += " -X " + cfg.VersionVar + "=" + cfg.Version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, cfg.Package)
	cmd.Dir = cfg.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build agentctl for %s/%s: %w\n%s", t.OS, t.Arch, err, b)
	}
	return nil
}

// writeArchive writes agentctl and LICENSE into a tar.gz and returns its SHA-256.
func writeArchive(path, bin string, license []byte, mtime time.Time) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("failed to read %s: %w", bin, err)
	}
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	gz.ModTime = mtime.UTC()
	tw := tar.NewWriter(gz)
	for _, e := range []struct {
		name string
		mode int64
		data []byte
	}{{"LICENSE", 0o644, license}, {"agentctl", 0o755, data}} {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), ModTime: mtime.UTC(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return "", fmt.Errorf("failed to write %s: %w", path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return "", fmt.Errorf("failed to write %s: %w", path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("failed to write %s: %w", path, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// writeSums writes SHA256SUMS in the format `sha256sum -c` reads.
func writeSums(path string, archives []Archive) error {
	var lines []string
	for _, a := range archives {
		lines = append(lines, a.SHA256+"  "+a.Name)
	}
	slices.Sort(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// writeKrew renders the krew manifest.
func writeKrew(path, version string, archives []Archive) error {
	t, err := template.New("krew").Parse(krewTemplate)
	if err != nil {
		return fmt.Errorf("failed to parse the krew template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		Version  string
		Archives []Archive
	}{version, archives}); err != nil {
		return fmt.Errorf("failed to render the krew manifest: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
