// Package compat gives tests the last release of ecklink (test/compat/releases.txt): its source
// from `git archive` of the release commit, its agent and agentctl built from that source, and
// its chart. Tests check HEAD against it: mixed-version links, chart upgrades, CRD adoption.
// Everything is cached under .cache/compat/<sha>, so a warm machine builds nothing.
package compat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ecklink/ecklink/test/testbed"
)

// Release is one released version and its commit.
type Release struct {
	Version string
	Commit  string
}

// Releases reads test/compat/releases.txt, oldest first.
func Releases() ([]Release, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(root, "test", "compat", "releases.txt"))
	if err != nil {
		return nil, fmt.Errorf("failed to read the releases: %w", err)
	}
	defer f.Close()
	var out []Release
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || len(fields[1]) != 40 {
			return nil, fmt.Errorf("invalid line in releases.txt %q: want <version> <40-hex commit>", line)
		}
		out = append(out, Release{Version: fields[0], Commit: fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the releases: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("releases.txt lists no release")
	}
	return out, nil
}

// Last returns the last release.
func Last() (Release, error) {
	rs, err := Releases()
	if err != nil {
		return Release{}, err
	}
	return rs[len(rs)-1], nil
}

// cacheDir is .cache/compat/<commit> of the repository.
func cacheDir(commit string) (string, error) {
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "compat", commit), nil
}

// Source extracts `git archive <commit>` once and returns its folder. A clone without the commit
// (a shallow CI clone) fetches it from origin first; the error says how when that fails.
func (r Release) Source(ctx context.Context) (string, error) {
	dir, err := cacheDir(r.Commit)
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err == nil {
		return src, nil
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		return "", err
	}
	has := func() error {
		return exec.CommandContext(ctx, "git", "-C", root, "cat-file", "-e", r.Commit+"^{commit}").Run()
	}
	if has() != nil {
		// A shallow clone (CI) lacks the release commit: fetch just that one, as make verify does.
		_ = exec.CommandContext(ctx, "git", "-C", root, "fetch", "--quiet", "--depth=1", "origin", r.Commit).Run()
	}
	if err := has(); err != nil {
		return "", fmt.Errorf("release %s commit %s is not in this clone and could not be fetched (%v): git fetch origin %s (or git fetch --unshallow)", r.Version, r.Commit, err, r.Commit)
	}
	tmp := src + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", tmp, err)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, r.Commit, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to extract release %s: %w\n%s", r.Version, err, out)
	}
	if err := os.Rename(tmp, src); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(filepath.Join(src, "go.mod")); statErr != nil {
			return "", fmt.Errorf("failed to move release %s into place: %w", r.Version, err)
		}
	}
	return src, nil
}

// Chart returns the release's Helm chart folder.
func (r Release) Chart(ctx context.Context) (string, error) {
	src, err := r.Source(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(src, "deploy", "helm", "ecklink"), nil
}

// Binary builds the release's program (e.g. "agent", "agentctl" from ./agent/cmd/<name>) once,
// with its version set as the release build sets it, and returns its path.
func (r Release) Binary(ctx context.Context, name string) (string, error) {
	dir, err := cacheDir(r.Commit)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	src, err := r.Source(ctx)
	if err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp,
		"-ldflags", "-X github.com/ecklink/ecklink/internal/version.Version="+r.Version, "./agent/cmd/"+name)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to build %s of release %s: %w\n%s", name, r.Version, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("failed to move %s into place: %w", bin, err)
	}
	return bin, nil
}
