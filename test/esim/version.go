package esim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// esVersion is a parsed Elasticsearch version.
type esVersion struct {
	major, minor, patch int
	raw                 string
}

func parseVersion(s string) (esVersion, error) {
	core, _, _ := strings.Cut(s, "-") // allow "-SNAPSHOT" style suffixes
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return esVersion{}, fmt.Errorf("failed to parse Version %q: want MAJOR.MINOR.PATCH", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return esVersion{}, fmt.Errorf("failed to parse Version %q: bad number %q", s, p)
		}
		nums[i] = n
	}
	v := esVersion{nums[0], nums[1], nums[2], s}
	if v.major < 8 || v.major > 9 {
		return esVersion{}, fmt.Errorf("failed to validate Version %q: esim simulates Elasticsearch 8.0 to 9.x", s)
	}
	return v, nil
}

// atLeast reports whether v >= major.minor.
func (v esVersion) atLeast(major, minor int) bool {
	if v.major != major {
		return v.major > major
	}
	return v.minor >= minor
}

// Behaviour switches. Versions marked [mem] are from memory, not verified
// against ES release notes.
func (v esVersion) hasCrossClusterKeys() bool     { return v.atLeast(8, 10) } // [mem] 8.10 beta
func (v esVersion) hasKeyType() bool              { return v.atLeast(8, 10) } // [mem]
func (v esVersion) hasActiveOnly() bool           { return v.atLeast(8, 10) }
func (v esVersion) hasWithLimitedBy() bool        { return v.atLeast(8, 5) }
func (v esVersion) hasProfileUID() bool           { return v.atLeast(8, 14) }
func (v esVersion) hasInvalidationTime() bool     { return v.atLeast(8, 12) } // [mem]
func (v esVersion) hasRealmType() bool            { return v.atLeast(8, 14) } // [mem]
func (v esVersion) hasMonitorEnrich() bool        { return v.atLeast(8, 14) } // [mem]
func (v esVersion) rejectsSearchDLSWithCCR() bool { return v.atLeast(8, 14) }
func (v esVersion) skipUnavailableDefault() bool  { return v.atLeast(8, 15) }
func (v esVersion) hasCertificateIdentity() bool  { return v.atLeast(9, 3) }
func (v esVersion) hasSigningSettings() bool      { return v.atLeast(9, 3) }
func (v esVersion) hasUnassignedPrimary() bool    { return v.atLeast(8, 16) } // [mem]

// luceneVersion is a plausible Lucene version for the ES minor [mem].
func (v esVersion) luceneVersion() string {
	if v.major == 9 {
		table := map[int]string{0: "10.1.0", 1: "10.2.1", 2: "10.2.2", 3: "10.3.1", 4: "10.3.2"}
		if l, ok := table[v.minor]; ok {
			return l
		}
		return "10.3.2"
	}
	table := []string{"9.0.0", "9.1.0", "9.2.0", "9.3.0", "9.4.1", "9.4.2", "9.4.2", "9.5.0", "9.6.0", "9.7.0",
		"9.7.0", "9.8.0", "9.9.2", "9.10.0", "9.10.0", "9.11.1", "9.12.0", "9.12.0", "9.12.1", "9.12.2"}
	if v.minor < len(table) {
		return table[v.minor]
	}
	return table[len(table)-1]
}

func (v esVersion) minWireCompat() string {
	if v.major == 9 {
		return "8.18.0"
	}
	return "7.17.0"
}

func (v esVersion) minIndexCompat() string {
	if v.major == 9 {
		return "8.0.0"
	}
	return "7.0.0"
}

// buildHash is a stable fake 40-hex build hash derived from the version.
func (v esVersion) buildHash() string {
	h := sha1.Sum([]byte("esim-" + v.raw))
	return hex.EncodeToString(h[:])
}
