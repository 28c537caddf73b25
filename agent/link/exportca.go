package link

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// KindExportCA is the resource kind of an exported Elasticsearch's transport CA bundle, shared by
// the credentials of every link to it (peer capability "export-ca").
const KindExportCA = "exportca"

var exportCAID = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

// ExportCAID is the opaque name of an exported Elasticsearch in resource keys: it tells the peer
// which links share a CA, and nothing of the namespace or name.
func ExportCAID(namespace, elasticsearch string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + elasticsearch))
	return hex.EncodeToString(sum[:16])
}

// ExportCAResource is "exportca/<id>".
func ExportCAResource(id string) string { return KindExportCA + "/" + id }

// ParseExportCAResource returns the id of an "exportca/<id>" resource key; ok is false for any
// other key, and for an id that is not 16 to 64 lower-case hex digits.
func ParseExportCAResource(key string) (id string, ok bool) {
	id, ok = strings.CutPrefix(key, KindExportCA+"/")
	return id, ok && ValidExportCAID(id)
}

// ValidExportCAID reports whether id looks like an ExportCAID.
func ValidExportCAID(id string) bool { return exportCAID.MatchString(id) }
