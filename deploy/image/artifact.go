package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// emptyConfig is the OCI 1.1 empty descriptor's content, the config of artifacts.
var emptyConfig = []byte("{}")

const emptyMediaType types.MediaType = "application/vnd.oci.empty.v1+json"

// Artifact wraps a document as an OCI 1.1 artifact manifest whose subject is subject (the image
// index): registries with the referrers API list it under the index's digest, and clients
// (oras discover, cosign tree, crane) find it from the image. The image's own layers and digest
// stay what runs; the SBOM travels beside it.
func Artifact(doc []byte, mediaType, title string, subject v1.Descriptor, created time.Time) (v1.Image, error) {
	layer := static.NewLayer(doc, types.MediaType(mediaType))
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, fmt.Errorf("failed to describe the artifact: %w", err)
	}
	ld.Annotations = map[string]string{"org.opencontainers.image.title": title}
	cfg := static.NewLayer(emptyConfig, emptyMediaType)
	cd, err := partial.Descriptor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to describe the artifact config: %w", err)
	}
	cd.Data = emptyConfig
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: mediaType,
		Config: *cd, Layers: []v1.Descriptor{*ld}, Subject: &subject,
		Annotations: map[string]string{"org.opencontainers.image.created": created.UTC().Format(time.RFC3339)},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the artifact manifest: %w", err)
	}
	return partial.CompressedToImage(&artifact{manifest: raw, layer: layer, config: cfg, configDigest: cd.Digest})
}

// artifact is the minimal core go-containerregistry completes into a v1.Image.
type artifact struct {
	manifest     []byte
	layer        v1.Layer
	config       v1.Layer
	configDigest v1.Hash
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == a.configDigest {
		return a.config, nil
	}
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}

// ArtifactContent returns the single document of an artifact made by Artifact.
func ArtifactContent(img v1.Image) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return nil, fmt.Errorf("failed to read the artifact: want one layer (%v)", err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		return nil, fmt.Errorf("failed to read the artifact: %w", err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, rc); err != nil {
		return nil, fmt.Errorf("failed to read the artifact: %w", err)
	}
	return b.Bytes(), nil
}
