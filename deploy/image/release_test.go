package image_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecklink/ecklink/deploy/image"
)

// buildRelease builds the standin for both platforms into a release, as build-image does.
func buildRelease(t *testing.T, version string) (image.Release, map[string][]image.File) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	images, bins := map[string]v1.Image{}, map[string][]image.File{}
	for _, arch := range image.Platforms {
		files, err := image.GoBuild(ctx, image.GoBuildConfig{
			Dir: ".", OutDir: t.TempDir(), Arch: arch, Version: version, VersionVar: "main.version",
			Programs: []image.Program{{Package: "./testdata/standin", Path: image.AgentPath}, {Package: "./testdata/standin", Path: image.AgentctlPath}},
		})
		if err != nil {
			t.Fatal(err)
		}
		bins[arch] = files
		if images[arch], err = image.Build(image.Config{Version: version, License: "Apache-2.0", Arch: arch, Binaries: files}); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := image.Index(images)
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := image.SBOM(image.SBOMConfig{Version: version, License: "Apache-2.0", Created: time.Unix(0, 0), Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	art, err := image.Artifact(sbom, image.SBOMMediaType, "sbom.spdx.json", *subject, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return image.Release{Tag: version, Index: idx, SBOM: art}, bins
}

// TestPushToRegistry writes the release as an OCI layout, reads it back and pushes it to an
// in-process registry (go-containerregistry's pkg/registry), with and without the OCI 1.1
// referrers API, then pulls it as a client would: the index lists both platforms, each image
// is for its architecture, and the SBOM is found from the index digest.
func TestPushToRegistry(t *testing.T) {
	const version = "0.0.0-test"
	built, bins := buildRelease(t, version)
	dir := filepath.Join(t.TempDir(), "oci")
	if err := image.WriteLayout(dir, built); err != nil {
		t.Fatal(err)
	}
	rel, err := image.ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Tag != version {
		t.Errorf("layout tag %q, want %q", rel.Tag, version)
	}
	for _, referrersAPI := range []bool{true, false} {
		name := map[bool]string{true: "referrers API", false: "referrers tag schema"}[referrersAPI]
		t.Run(name, func(t *testing.T) {
			var opts []registry.Option
			if referrersAPI {
				opts = append(opts, registry.WithReferrersSupport(true))
			}
			opts = append(opts, registry.Logger(log.New(io.Discard, "", 0)))
			srv := httptest.NewServer(registry.New(opts...))
			defer srv.Close()
			repo := strings.TrimPrefix(srv.URL, "http://") + "/ecklink/agent"
			digest, err := image.Push(context.Background(), repo, rel)
			if err != nil {
				t.Fatal(err)
			}
			checkPulled(t, repo+":"+version, digest, bins)
		})
	}
}

func checkPulled(t *testing.T, tagRef string, digest name.Digest, bins map[string][]image.File) {
	t.Helper()
	tag, err := name.NewTag(tagRef)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(tag)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if d, _ := idx.Digest(); d.String() != digest.DigestStr() {
		t.Errorf("tag points at %s, Push returned %s", d, digest.DigestStr())
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatalf("pull %s: %v", m.Platform.Architecture, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != m.Platform.Architecture || cf.Config.User != image.User {
			t.Errorf("image for %s: architecture %s user %s", m.Platform.Architecture, cf.Architecture, cf.Config.User)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("platforms %q, want %q", platforms, want)
	}

	refs, err := remote.Referrers(digest)
	if err != nil {
		t.Fatalf("referrers of the index: %v", err)
	}
	rm, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Manifests) != 1 {
		t.Fatalf("referrers %+v, want the SBOM only", rm.Manifests)
	}
	art, err := remote.Image(digest.Context().Digest(rm.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatalf("pull the SBOM: %v", err)
	}
	// The manifest's artifactType is what OCI 1.1 registries report in the referrers list
	// (pkg/registry reports the config's media type instead, the OCI empty type here).
	if m, err := art.Manifest(); err != nil || m.ArtifactType != image.SBOMMediaType || m.Subject == nil || m.Subject.Digest.String() != digest.DigestStr() {
		t.Fatalf("SBOM manifest %+v (%v), want artifactType %s and the index as subject", m, err, image.SBOMMediaType)
	}
	doc, err := image.ArtifactContent(art)
	if err != nil {
		t.Fatal(err)
	}
	checkSBOM(t, doc, bins)
}

// checkSBOM expects an SPDX 2.3 document naming every binary with its SHA-256 and the Go
// modules linked into them.
func checkSBOM(t *testing.T, doc []byte, bins map[string][]image.File) {
	t.Helper()
	var sbom struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name, VersionInfo string
		} `json:"packages"`
		Files []struct {
			FileName  string `json:"fileName"`
			Comment   string `json:"comment"`
			Checksums []struct{ Algorithm, ChecksumValue string }
		} `json:"files"`
	}
	if err := json.Unmarshal(doc, &sbom); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	if sbom.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion %q", sbom.SPDXVersion)
	}
	var pkgs []string
	for _, p := range sbom.Packages {
		pkgs = append(pkgs, p.Name)
	}
	for _, want := range []string{"ecklink-agent", "github.com/ecklink/ecklink", "stdlib"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("SBOM packages %q lack %s", pkgs, want)
		}
	}
	sums := map[string]string{}
	for _, f := range sbom.Files {
		if len(f.Checksums) == 1 && f.Checksums[0].Algorithm == "SHA256" {
			sums[f.Comment+" "+f.FileName] = f.Checksums[0].ChecksumValue
		}
	}
	for arch, files := range bins {
		for _, f := range files {
			data, err := os.ReadFile(f.Source)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(data)
			key := "linux/" + arch + " ." + f.Path
			if sums[key] != hex.EncodeToString(h[:]) {
				t.Errorf("SBOM checksum of %s = %q, want %x", key, sums[key], h)
			}
		}
	}
}

// TestSBOMIsReproducible: the same binaries give the same document.
func TestSBOMIsReproducible(t *testing.T) {
	bins := map[string][]image.File{"amd64": buildStandin(t, "1.0.0")}
	make := func() []byte {
		b, err := image.SBOM(image.SBOMConfig{Version: "1.0.0", License: "Apache-2.0", Created: time.Unix(0, 0), Binaries: bins})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if a, b := make(), make(); string(a) != string(b) {
		t.Error("two SBOMs of the same binaries differ")
	}
}
