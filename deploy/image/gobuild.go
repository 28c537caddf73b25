package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
)

// VersionVar is the variable the agent and agentctl report their version from; GoBuild sets it
// with -ldflags -X.
const VersionVar = "github.com/ecklink/ecklink/internal/version.Version"

// Program is one Go main package to build into the image.
type Program struct {
	// Package is the package to build, e.g. "./agent/cmd/agent".
	Package string
	// Path is where the binary goes in the image, e.g. AgentPath.
	Path string
}

// GoBuildConfig configures GoBuild.
type GoBuildConfig struct {
	// Dir is the module directory the packages are resolved in. Required.
	Dir string
	// OutDir receives the binaries. Required.
	OutDir string
	// Programs to build. Required.
	Programs []Program
	// Arch is the target GOARCH; runtime.GOARCH if empty. GOOS is always linux.
	Arch string
	// Version is written into VersionVar (or the variable named by VersionVar).
	Version string
	// VersionVar overrides the variable set to Version; VersionVar if empty.
	VersionVar string
}

// GoBuild compiles static, stripped, reproducible linux binaries (CGO_ENABLED=0, -trimpath,
// -s -w) and returns them as files for Config.Binaries.
func GoBuild(ctx context.Context, cfg GoBuildConfig) ([]File, error) {
	if cfg.Dir == "" || cfg.OutDir == "" || len(cfg.Programs) == 0 {
		return nil, errors.New("failed to build binaries: Dir, OutDir and Programs are required")
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.VersionVar == "" {
		cfg.VersionVar = VersionVar
	}
	ldflags := "-s -w -buildid= -X " + cfg.VersionVar + "=" + cfg.Version
	var files []File
	for _, p := range cfg.Programs {
		out := filepath.Join(cfg.OutDir, path.Base(p.Path))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, p.Package)
		cmd.Dir = cfg.Dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+cfg.Arch)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("failed to build %s: %w\n%s", p.Package, err, stderr.Bytes())
		}
		files = append(files, File{Path: p.Path, Source: out})
	}
	return files, nil
}
