// Command build-image builds the agent's container image without a container engine:
//
//	go run ./deploy/image/cmd/build-image --version 0.2.0 [--layout dist/ecklink-agent-0.2.0-oci]
//
// It compiles ./agent/cmd/agent and ./agent/cmd/agentctl for every platform (linux/amd64 and
// linux/arm64), assembles one image per platform, an OCI image index of them and an SPDX SBOM
// attached to the index as an OCI 1.1 artifact, and writes them as an OCI image layout
// (`make push` publishes it). It also writes, for this machine's architecture, a tarball for
// `docker load -i` or `kind load image-archive`, and the SBOM as a file. It prints the paths.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
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

type options struct {
	version, out, layout, sbom, revision, license, agent, agentctl, versionVar string
	platforms                                                                  []string
	created                                                                    int64
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := pflag.NewFlagSet("build-image", pflag.ContinueOnError)
	fs.StringVar(&o.version, "version", "", "image version: the tag and the version label (required), e.g. 0.2.0")
	fs.StringVar(&o.out, "out", "", "docker load tarball for this machine's architecture (default dist/ecklink-agent-VERSION.tar)")
	fs.StringVar(&o.layout, "layout", "", "OCI image layout of the multi-arch index and SBOM (default dist/ecklink-agent-VERSION-oci)")
	fs.StringVar(&o.sbom, "sbom", "", "SBOM file (default dist/ecklink-agent-VERSION.spdx.json)")
	fs.StringVar(&o.revision, "revision", "", "source commit for the revision label")
	fs.StringVar(&o.license, "license", "Apache-2.0", "SPDX license expression for the licenses label")
	fs.StringSliceVar(&o.platforms, "arch", image.Platforms, "target GOARCH values (linux)")
	fs.Int64Var(&o.created, "created", sourceDateEpoch(), "creation time in Unix seconds (default $SOURCE_DATE_EPOCH, else 0)")
	fs.StringVar(&o.agent, "agent", "./agent/cmd/agent", "agent main package")
	fs.StringVar(&o.agentctl, "agentctl", "./agent/cmd/agentctl", "agentctl main package")
	fs.StringVar(&o.versionVar, "version-var", image.VersionVar, "variable set to the version with -ldflags -X")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.version == "" {
		return errors.New("--version is required")
	}
	defaults := map[*string]string{&o.out: ".tar", &o.layout: "-oci", &o.sbom: ".spdx.json"}
	for p, suffix := range defaults {
		if *p == "" {
			*p = "dist/ecklink-agent-" + o.version + suffix
		}
	}
	tag, err := image.Tag(o.version)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ecklink-image-")
	if err != nil {
		return fmt.Errorf("failed to create build folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	created := time.Unix(o.created, 0)
	images, bins := map[string]v1.Image{}, map[string][]image.File{}
	for _, arch := range o.platforms {
		if bins[arch], err = image.GoBuild(ctx, image.GoBuildConfig{
			Dir: ".", OutDir: filepath.Join(tmp, arch), Arch: arch, Version: o.version, VersionVar: o.versionVar,
			Programs: []image.Program{{Package: o.agent, Path: image.AgentPath}, {Package: o.agentctl, Path: image.AgentctlPath}},
		}); err != nil {
			return err
		}
		if images[arch], err = image.Build(image.Config{Version: o.version, Revision: o.revision, License: o.license, Arch: arch,
			Created: created, Binaries: bins[arch]}); err != nil {
			return err
		}
	}
	rel, sbom, err := release(o, images, bins, created)
	if err != nil {
		return err
	}
	if err := image.WriteLayout(o.layout, rel); err != nil {
		return err
	}
	if err := os.WriteFile(o.sbom, sbom, 0o644); err != nil {
		return fmt.Errorf("failed to write the SBOM: %w", err)
	}
	digest, _ := rel.Index.Digest()
	fmt.Fprintf(os.Stderr, "build-image: %s index %s (%s) with its SBOM in %s\n", tag, digest, strings.Join(o.platforms, ", "), o.layout)
	fmt.Fprintln(stdout, o.layout)
	fmt.Fprintln(stdout, o.sbom)
	if img, ok := images[runtime.GOARCH]; ok {
		if err := image.WriteTarball(o.out, tag, img); err != nil {
			return err
		}
		fmt.Fprintln(stdout, o.out)
	}
	return nil
}

// release assembles the index and its SBOM artifact.
func release(o options, images map[string]v1.Image, bins map[string][]image.File, created time.Time) (image.Release, []byte, error) {
	idx, err := image.Index(images)
	if err != nil {
		return image.Release{}, nil, err
	}
	sbom, err := image.SBOM(image.SBOMConfig{Version: o.version, License: o.license, Created: created, Binaries: bins})
	if err != nil {
		return image.Release{}, nil, err
	}
	subject, err := partial.Descriptor(idx)
	if err != nil {
		return image.Release{}, nil, fmt.Errorf("failed to describe the index: %w", err)
	}
	art, err := image.Artifact(sbom, image.SBOMMediaType, "ecklink-agent-"+o.version+".spdx.json", *subject, created)
	if err != nil {
		return image.Release{}, nil, err
	}
	return image.Release{Tag: o.version, Index: idx, SBOM: art}, sbom, nil
}

// sourceDateEpoch reads $SOURCE_DATE_EPOCH (reproducible-builds.org), 0 if unset or invalid.
func sourceDateEpoch() int64 {
	n, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
