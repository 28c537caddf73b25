package link

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// KindCAStatus is the resource kind of the CAs one consuming Elasticsearch applied from one shared
// bundle (peer capability "ca-status"): "castatus/<exportca id>/<namespace>/<elasticsearch>".
const KindCAStatus = "castatus"

// CAGroup names the links a CAStatus speaks for: those of one consuming Elasticsearch whose
// credentials name one shared bundle.
type CAGroup struct {
	ExportCA      string // the bundle's ExportCAID
	Namespace     string // the consuming Elasticsearch
	Elasticsearch string
}

// Has reports whether link id belongs to the group of the bundle exportCA.
func (g CAGroup) Has(id ID, exportCA string) bool {
	return g.ExportCA == exportCA && g.Namespace == id.Namespace && g.Elasticsearch == id.Elasticsearch
}

// CAStatusResource is "castatus/<exportca id>/<namespace>/<elasticsearch>".
func CAStatusResource(g CAGroup) string {
	return KindCAStatus + "/" + g.ExportCA + "/" + g.Namespace + "/" + g.Elasticsearch
}

// ParseCAStatusResource reads a "castatus/..." key. ok is false for a key of another kind; err
// names the bad part of a castatus key.
func ParseCAStatusResource(key string) (g CAGroup, ok bool, err error) {
	rest, ok := strings.CutPrefix(key, KindCAStatus+"/")
	if !ok {
		return CAGroup{}, false, nil
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return CAGroup{}, true, fmt.Errorf("invalid resource %q: want castatus/<exportca id>/namespace/elasticsearch", key)
	}
	g = CAGroup{ExportCA: parts[0], Namespace: parts[1], Elasticsearch: parts[2]}
	if !ValidExportCAID(g.ExportCA) {
		return CAGroup{}, true, fmt.Errorf("invalid resource %q: exportca id: want 16 to 64 lower-case hex digits", key)
	}
	// The alias part of an ID is not in the key: validate the rest with a placeholder alias.
	if err := (ID{Namespace: g.Namespace, Elasticsearch: g.Elasticsearch, Alias: "a"}).Validate(); err != nil {
		return CAGroup{}, true, fmt.Errorf("invalid resource %q: %w", key, err)
	}
	return g, true, nil
}
