package image

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// refNameAnnotation names the tag of a manifest in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Release is what `make image` produces and `make push` publishes: the multi-arch index and
// its SBOM artifact.
type Release struct {
	Tag   string
	Index v1.ImageIndex
	SBOM  v1.Image
}

// WriteLayout writes the release as an OCI image layout in dir (replacing it): the index tagged
// with the version, and the SBOM artifact. An air-gapped site copies the folder and pushes it
// with `make push` or any OCI tool (oras, crane, skopeo).
func WriteLayout(dir string, r Release) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("failed to clear %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("failed to create the OCI layout: %w", err)
	}
	if err := p.AppendIndex(r.Index, layout.WithAnnotations(map[string]string{refNameAnnotation: r.Tag})); err != nil {
		return fmt.Errorf("failed to write the index: %w", err)
	}
	if err := p.AppendImage(r.SBOM); err != nil {
		return fmt.Errorf("failed to write the SBOM: %w", err)
	}
	return nil
}

// ReadLayout reads a layout WriteLayout wrote.
func ReadLayout(dir string) (Release, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return Release{}, fmt.Errorf("failed to open the OCI layout %s: %w", dir, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return Release{}, fmt.Errorf("failed to read %s/index.json: %w", dir, err)
	}
	m, err := root.IndexManifest()
	if err != nil {
		return Release{}, fmt.Errorf("failed to read %s/index.json: %w", dir, err)
	}
	var r Release
	for _, d := range m.Manifests {
		switch {
		case d.Annotations[refNameAnnotation] != "" && d.MediaType.IsIndex():
			r.Tag = d.Annotations[refNameAnnotation]
			if r.Index, err = root.ImageIndex(d.Digest); err != nil {
				return Release{}, fmt.Errorf("failed to read the index: %w", err)
			}
		case d.ArtifactType == SBOMMediaType || d.MediaType.IsImage():
			if r.SBOM, err = root.Image(d.Digest); err != nil {
				return Release{}, fmt.Errorf("failed to read the SBOM: %w", err)
			}
		}
	}
	if r.Index == nil || r.SBOM == nil {
		return Release{}, fmt.Errorf("failed to read %s: want a tagged index and its SBOM (written by make image)", dir)
	}
	return r, nil
}

// Push publishes the release to repository (e.g. registry.example.com/ecklink/agent) without a
// container engine: every platform image and the index under the tag, then the SBOM by digest
// (go-containerregistry also writes the referrers tag schema where the registry has no
// referrers API). It returns the index's digest reference, for image.digest.
func Push(ctx context.Context, repository string, r Release, opts ...remote.Option) (name.Digest, error) {
	tag, err := name.NewTag(repository+":"+r.Tag, name.StrictValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("failed to push: invalid repository %q: %w", repository, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	if err := remote.WriteIndex(tag, r.Index, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("failed to push %s: %w", tag, err)
	}
	d, err := r.Index.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("failed to compute the index digest: %w", err)
	}
	sd, err := r.SBOM.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("failed to compute the SBOM digest: %w", err)
	}
	if err := remote.Write(tag.Context().Digest(sd.String()), r.SBOM, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("failed to push the SBOM of %s: %w", tag, err)
	}
	return tag.Context().Digest(d.String()), nil
}
