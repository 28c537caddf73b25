package image

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// SBOMMediaType is the media type of the SBOM document and the artifact type of its manifest.
const SBOMMediaType = "application/spdx+json"

// SBOMConfig describes what the SBOM covers.
type SBOMConfig struct {
	// Version of the image. Required.
	Version string
	// License of ecklink itself (SPDX expression). Required.
	License string
	// Created is the document's creation time (reproducible builds pass SOURCE_DATE_EPOCH).
	Created time.Time
	// Binaries of the image by GOARCH.
	Binaries map[string][]File
}

// The subset of SPDX 2.3 (JSON) the SBOM uses.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Files             []spdxFile         `json:"files"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                string            `json:"SPDXID"`
	Name                  string            `json:"name"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	LicenseConcluded      string            `json:"licenseConcluded"`
	LicenseDeclared       string            `json:"licenseDeclared"`
	CopyrightText         string            `json:"copyrightText"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxFile struct {
	SPDXID    string         `json:"SPDXID"`
	FileName  string         `json:"fileName"`
	Checksums []spdxChecksum `json:"checksums"`
	Comment   string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM writes an SPDX 2.3 JSON document of the image: the image itself, each binary per
// architecture with its SHA-256, and every Go module linked into the binaries (read from the
// build information Go embeds, so it lists exactly what was compiled in, the toolchain's
// standard library included). Licenses of dependencies are NOASSERTION: the build does not
// read them.
func SBOM(cfg SBOMConfig) ([]byte, error) {
	if cfg.Version == "" || cfg.License == "" || len(cfg.Binaries) == 0 {
		return nil, fmt.Errorf("failed to write the SBOM: Version, License and Binaries are required")
	}
	const imageID = "SPDXRef-Package-ecklink-agent"
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:         "ecklink-agent-" + cfg.Version,
		CreationInfo: spdxCreationInfo{Created: cfg.Created.UTC().Format(time.RFC3339), Creators: []string{"Tool: ecklink-build-image", "Organization: ecklink"}},
		Packages: []spdxPackage{{
			SPDXID: imageID, Name: "ecklink-agent", VersionInfo: cfg.Version, DownloadLocation: Source,
			LicenseConcluded: cfg.License, LicenseDeclared: cfg.License, CopyrightText: "NOASSERTION", PrimaryPackagePurpose: "CONTAINER",
			ExternalRefs: []spdxExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: "pkg:oci/agent?repository_url=" + strings.TrimSuffix(Repository, "/agent") + "&tag=" + cfg.Version}},
		}},
		Relationships: []spdxRelationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: imageID}},
	}
	modules := map[string]string{} // path@version -> SPDXID
	var arches []string
	for a := range cfg.Binaries {
		arches = append(arches, a)
	}
	slices.Sort(arches)
	for _, arch := range arches {
		for _, f := range cfg.Binaries[arch] {
			id := spdxID("SPDXRef-File-" + arch + "-" + path.Base(f.Path))
			sum, deps, err := inspectBinary(f.Source)
			if err != nil {
				return nil, err
			}
			doc.Files = append(doc.Files, spdxFile{SPDXID: id, FileName: "." + f.Path, Comment: "linux/" + arch,
				Checksums: []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: sum}}})
			doc.Relationships = append(doc.Relationships, spdxRelationship{Element: imageID, Type: "CONTAINS", Related: id})
			for _, d := range deps {
				key := d[0] + "@" + d[1]
				pid, ok := modules[key]
				if !ok {
					pid = spdxID("SPDXRef-Package-go-" + key)
					modules[key] = pid
					doc.Packages = append(doc.Packages, spdxPackage{
						SPDXID: pid, Name: d[0], VersionInfo: d[1], DownloadLocation: "NOASSERTION",
						LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
						ExternalRefs: []spdxExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: "pkg:golang/" + d[0] + "@" + d[1]}},
					})
				}
				doc.Relationships = append(doc.Relationships, spdxRelationship{Element: id, Type: "CONTAINS", Related: pid})
			}
		}
	}
	// The namespace must be unique per document: derive it from the content, so the same
	// inputs give the same document.
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the SBOM: %w", err)
	}
	h := sha256.Sum256(body)
	doc.DocumentNamespace = Source + "/spdx/ecklink-agent-" + cfg.Version + "-" + hex.EncodeToString(h[:8])
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode the SBOM: %w", err)
	}
	return append(out, '\n'), nil
}

// inspectBinary returns a binary's SHA-256 and the modules its build information names: the
// main module, each dependency (its replacement where replaced) and the Go standard library.
func inspectBinary(p string) (string, [][2]string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("failed to read %s: %w", p, err)
	}
	sum := sha256.Sum256(data)
	bi, err := buildinfo.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("failed to read the build information of %s: %w", p, err)
	}
	deps := [][2]string{{"stdlib", bi.GoVersion}}
	if bi.Main.Path != "" {
		v := bi.Main.Version
		if v == "" {
			v = "(devel)"
		}
		deps = append(deps, [2]string{bi.Main.Path, v})
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		deps = append(deps, [2]string{d.Path, d.Version})
	}
	return hex.EncodeToString(sum[:]), deps, nil
}

// spdxID keeps the characters SPDX identifiers allow (letters, digits, '.', '-').
func spdxID(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, s)
}
