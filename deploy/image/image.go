// Package image builds the agent's container image without a container engine: static Go
// binaries on an empty base, plus /etc/passwd and /etc/group entries for the nonroot user, written
// as a tarball that `docker load` (and kind, podman, crane) accept.
//
// The image holds no CA certificates on purpose: the agent talks only to its Kubernetes API server
// (trusting the service account CA), to Elasticsearch over cluster-internal TLS (trusting the CA
// from ECK's Secrets) and to peers over mTLS (trusting their agent CAs from Peer objects). Every TLS
// connection names its CA explicitly, so a system trust store would only widen trust.
package image

import (
	"errors"
	"fmt"
	"path"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Repository is where the image is published; the chart's default image.repository.
	Repository = "ghcr.io/ecklink/agent"
	// AgentPath is the agent binary in the image, and the entrypoint.
	AgentPath = "/usr/local/bin/agent"
	// AgentctlPath is the CLI in the image, for `kubectl exec ... agentctl`.
	AgentctlPath = "/usr/local/bin/agentctl"
	// UID and GID of the nonroot user the image runs as (the chart's runAsUser).
	UID = 65532
	GID = 65532
	// User is the image's config.User.
	User = "65532:65532"
	// Path is the only environment variable the image sets.
	Path = "PATH=/usr/local/bin"
	// Source is the image's org.opencontainers.image.source label.
	Source = "https://github.com/ecklink/ecklink"
)

// File is a regular file copied into the image.
type File struct {
	// Path is the absolute path in the image, e.g. AgentPath.
	Path string
	// Source is the file on the build host.
	Source string
	// Mode is the file mode in the image; 0o755 if zero.
	Mode int64
}

// Config describes one image.
type Config struct {
	// Version is the image version (label and tag), e.g. "0.1.0". Required.
	Version string
	// Revision is the source commit, for the org.opencontainers.image.revision label.
	Revision string
	// License is the SPDX expression of the org.opencontainers.image.licenses label. Required.
	License string
	// Arch is the GOARCH the binaries were built for; runtime.GOARCH if empty.
	Arch string
	// Created is the image's creation time; the zero value means the Unix epoch, which keeps
	// builds of the same sources byte for byte identical.
	Created time.Time
	// Binaries are the programs to copy; one must be at AgentPath.
	Binaries []File
}

// Labels returns the image's OCI annotation labels.
func (c Config) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "ecklink-agent",
		"org.opencontainers.image.description": "ecklink agent: links ECK Elasticsearch clusters across Kubernetes environments",
		"org.opencontainers.image.source":      Source,
		"org.opencontainers.image.version":     c.Version,
		"org.opencontainers.image.licenses":    c.License,
		"org.opencontainers.image.revision":    c.Revision,
	}
}

func (c Config) validate() error {
	var errs []error
	if c.Version == "" {
		errs = append(errs, errors.New("version is required"))
	}
	if c.License == "" {
		errs = append(errs, errors.New("license is required"))
	}
	hasAgent := false
	for _, f := range c.Binaries {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			errs = append(errs, fmt.Errorf("binary path %q is not a clean absolute path", f.Path))
		}
		if !strings.HasPrefix(f.Path, "/usr/local/bin/") {
			errs = append(errs, fmt.Errorf("binary path %q is not in /usr/local/bin", f.Path))
		}
		hasAgent = hasAgent || f.Path == AgentPath
	}
	if !hasAgent {
		errs = append(errs, fmt.Errorf("no binary at the entrypoint %s", AgentPath))
	}
	return errors.Join(errs...)
}

// Build assembles the image: a base layer (passwd, group, home and tmp folders) and a layer with
// the binaries, on an empty base, with the entrypoint, user, labels and PATH set.
func Build(cfg Config) (v1.Image, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid image config: %w", err)
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	created := v1.Time{Time: cfg.Created.UTC()}
	if cfg.Created.IsZero() {
		created = v1.Time{Time: time.Unix(0, 0).UTC()}
	}
	base, err := baseLayer(created.Time)
	if err != nil {
		return nil, fmt.Errorf("failed to build the base layer: %w", err)
	}
	bins, err := binaryLayer(cfg.Binaries, created.Time)
	if err != nil {
		return nil, fmt.Errorf("failed to build the binaries layer: %w", err)
	}
	// OCI media types throughout, so the images can sit in an OCI index with an SBOM artifact.
	base0 := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(base0, &v1.ConfigFile{
		Architecture: cfg.Arch,
		OS:           "linux",
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{AgentPath},
			User:       User,
			WorkingDir: "/",
			Env:        []string{Path},
			Labels:     cfg.Labels(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to set the image config: %w", err)
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "ecklink build-image: nonroot user", Comment: "passwd, group, /home/nonroot, /tmp"}},
		mutate.Addendum{Layer: bins, History: v1.History{Created: created, CreatedBy: "ecklink build-image: binaries", Comment: "static Go binaries"}},
	)
	if err != nil {
		return nil, fmt.Errorf("failed to add layers: %w", err)
	}
	return img, nil
}
