package image

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Tag returns the image reference for version, e.g. ghcr.io/ecklink/agent:0.1.0.
func Tag(version string) (name.Tag, error) {
	t, err := name.NewTag(Repository+":"+version, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("failed to make image tag for version %q: %w", version, err)
	}
	return t, nil
}

// WriteTarball writes img tagged tag as a `docker load` tarball at path, atomically: a failed
// write leaves no partial file behind.
func WriteTarball(path string, tag name.Tag, img v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create output folder: %w", err)
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to write image tarball: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to move image tarball into place: %w", err)
	}
	return nil
}
