package peering

import (
	"fmt"
	"strings"
	"unicode"
)

// Resource keys are the application's (package link names the links', package protocol gives
// every key its payload); the stream checks only their syntax and reserves its own key.
const (
	// ResourceInventory is reserved for the Inventory update each session sends.
	ResourceInventory = "inventory"

	maxResourceLen = 512
)

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
