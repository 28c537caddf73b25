package image

import (
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platforms are the architectures `make image` builds, all linux.
var Platforms = []string{"amd64", "arm64"}

// Index makes the OCI image index of one image per architecture (keys are GOARCH values), in a
// stable order so the index digest is reproducible.
func Index(images map[string]v1.Image) (v1.ImageIndex, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("failed to build the index: no images")
	}
	var arches []string
	for a := range images {
		arches = append(arches, a)
	}
	slices.Sort(arches)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range arches {
		cf, err := images[a].ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("failed to read the %s image config: %w", a, err)
		}
		if cf.Architecture != a || cf.OS != "linux" {
			return nil, fmt.Errorf("failed to build the index: the image for %s is %s/%s", a, cf.OS, cf.Architecture)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        images[a],
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: a}},
		})
	}
	return idx, nil
}
