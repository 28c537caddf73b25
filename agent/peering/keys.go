package peering

import (
	"fmt"
	"strings"
	"unicode"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Resource key conventions. A link is named from the consumer's (local side's) point of view on
// both sides, so an import request and the credentials answering it share the link key.
const (
	// ResourceTrust carries the sender's agent CA bundle.
	ResourceTrust = "trust"
	// ResourceInventory is reserved for the Inventory update each session sends.
	ResourceInventory = "inventory"

	maxResourceLen = 512
)

// LinkKey returns "<local namespace>/<local elasticsearch>/<alias>".
func LinkKey(l *peerv1.Link) string {
	return l.GetLocalNamespace() + "/" + l.GetLocalElasticsearch() + "/" + l.GetAlias()
}

// ImportResource returns "import/<link>" (local -> remote).
func ImportResource(link string) string { return "import/" + link }

// CredentialsResource returns "credentials/<link>" (remote -> local).
func CredentialsResource(link string) string { return "credentials/" + link }

// StatusResource returns "status/<link>" (local -> remote).
func StatusResource(link string) string { return "status/" + link }

// validateResource checks a resource key: non-empty, bounded, printable, without spaces.
func validateResource(key string) error {
	if key == "" {
		return fmt.Errorf("resource key is empty")
	}
	if len(key) > maxResourceLen {
		return fmt.Errorf("resource key is %d bytes, at most %d allowed", len(key), maxResourceLen)
	}
	if strings.IndexFunc(key, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("resource key %q has a space or a non-printable character", key)
	}
	return nil
}
