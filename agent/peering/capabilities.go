package peering

import (
	"regexp"
	"slices"
)

// Capabilities are optional protocol features, announced in Open (peer.proto, Open.capabilities).
// A feature is used towards a peer only when the peer's Open lists it, so agents that list none
// (0.1.0) keep getting what they always got.
const (
	// CapabilityExportCA: the agent applies ExportCA updates and Credentials.ca_ref.
	CapabilityExportCA = "export-ca"
	// CapabilityCAStatus: the agent reads CAStatus updates (one per consuming Elasticsearch and
	// shared bundle) in place of the CA part of each link's LinkStatus.
	CapabilityCAStatus = "ca-status"
)

// Bounds on what a peer announces: anything beyond is ignored, not refused, so that a newer
// peer with more features still connects.
const (
	maxCapabilities = 32
)

var capabilityName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// peerCapabilities keeps the well-formed capabilities a peer announced, at most
// maxCapabilities, sorted and without duplicates.
func peerCapabilities(announced []string) []string {
	var out []string
	for _, c := range announced {
		if len(out) == maxCapabilities {
			break
		}
		if capabilityName.MatchString(c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// HasCapability reports whether a session's peer announced capability c.
func (i SessionInfo) HasCapability(c string) bool { return slices.Contains(i.Capabilities, c) }
