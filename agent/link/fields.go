package link

import (
	"fmt"
	"regexp"

	"github.com/ecklink/ecklink/internal/peertext"
)

// The forms of the fields both halves take from a peer's messages (the exporter's receipt of
// import requests and statuses, the importer's of credentials), defined once so that the two
// sides cannot drift apart.
const (
	// MaxVersionLen bounds an Elasticsearch version a peer sends.
	MaxVersionLen = 32
	// MaxFingerprints bounds the CA fingerprints one message lists.
	MaxFingerprints = 32
)

var (
	esVersion   = regexp.MustCompile(`^[0-9A-Za-z][-0-9A-Za-z.+]*$`)
	apiKeyID    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	fingerprint = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidVersion says whether v is empty or an Elasticsearch version such as 9.3.2, at most
// MaxVersionLen characters.
func ValidVersion(v string) bool {
	return len(v) <= MaxVersionLen && (v == "" || esVersion.MatchString(v))
}

// ValidAPIKeyID says whether id is an API key id: 1 to 64 URL-safe base64 characters.
func ValidAPIKeyID(id string) bool { return apiKeyID.MatchString(id) }

// CheckFingerprints checks a list of SHA-256 fingerprints (64 lower-case hex digits each, at
// most MaxFingerprints), naming field in the error.
func CheckFingerprints(field string, fps []string) error {
	if len(fps) > MaxFingerprints {
		return fmt.Errorf("%d %s, at most %d allowed", len(fps), field, MaxFingerprints)
	}
	for _, fp := range fps {
		if !fingerprint.MatchString(fp) {
			return fmt.Errorf("%s entry %q: want 64 lower-case hex digits", field, peertext.Clean(fp, 64))
		}
	}
	return nil
}
