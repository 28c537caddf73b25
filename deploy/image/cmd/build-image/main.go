// Command build-image builds the agent's container image tarball without a container engine:
//
//	go run ./deploy/image/cmd/build-image --version 0.1.0 [--out dist/ecklink-agent-0.1.0.tar]
//
// It compiles ./agent/cmd/agent and ./agent/cmd/agentctl from the module in the working directory
// and prints the tarball's path; load it with `docker load -i PATH` or `kind load image-archive`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/ecklink/ecklink/deploy/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("build-image", pflag.ContinueOnError)
	version := fs.String("version", "", "image version: the tag and the version label (required), e.g. 0.1.0")
	out := fs.String("out", "", "output tarball (default dist/ecklink-agent-VERSION.tar)")
	revision := fs.String("revision", "", "source commit for the revision label")
	license := fs.String("license", "Apache-2.0", "SPDX license expression for the licenses label")
	arch := fs.String("arch", "", "target GOARCH (default: this machine's)")
	created := fs.Int64("created", sourceDateEpoch(), "creation time in Unix seconds (default $SOURCE_DATE_EPOCH, else 0)")
	agent := fs.String("agent", "./agent/cmd/agent", "agent main package")
	agentctl := fs.String("agentctl", "./agent/cmd/agentctl", "agentctl main package")
	versionVar := fs.String("version-var", image.VersionVar, "variable set to the version with -ldflags -X")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" {
		return errors.New("--version is required")
	}
	if *out == "" {
		*out = "dist/ecklink-agent-" + *version + ".tar"
	}
	tag, err := image.Tag(*version)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ecklink-image-")
	if err != nil {
		return fmt.Errorf("failed to create build folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	bins, err := image.GoBuild(ctx, image.GoBuildConfig{
		Dir: ".", OutDir: tmp, Arch: *arch, Version: *version, VersionVar: *versionVar,
		Programs: []image.Program{{Package: *agent, Path: image.AgentPath}, {Package: *agentctl, Path: image.AgentctlPath}},
	})
	if err != nil {
		return err
	}
	img, err := image.Build(image.Config{
		Version: *version, Revision: *revision, License: *license, Arch: *arch,
		Created: time.Unix(*created, 0), Binaries: bins,
	})
	if err != nil {
		return err
	}
	if err := image.WriteTarball(*out, tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("failed to compute image digest: %w", err)
	}
	fmt.Fprintf(os.Stderr, "build-image: wrote %s (%s)\n", tag, digest)
	fmt.Fprintln(stdout, *out)
	return nil
}

// sourceDateEpoch reads $SOURCE_DATE_EPOCH (reproducible-builds.org), 0 if unset or invalid.
func sourceDateEpoch() int64 {
	n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
