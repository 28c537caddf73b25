// Package license is the preflight of a link against the licenses its two Elasticsearch
// clusters report (GET /_license): which license each security model needs, and the verdict,
// in words that name the cluster, its license and what is needed.
//
// Facts (sources in docs/elasticsearch-facts.md, "Licenses"):
//   - The API-key model is the licensed feature "advanced-remote-cluster-security", whose
//     minimum operation mode is ENTERPRISE (x-pack Security.java). It is checked on both
//     clusters: with either one on Basic, cross-cluster requests fail with 403 "current license
//     is non-compliant for [advanced-remote-cluster-security]", and so do the create and update
//     cross-cluster API key APIs (RemoteClusterSecurityLicensingAndFeatureUsageRestIT).
//   - A trial license allows every feature (XPackLicenseState.isAllowedByOperationMode).
//   - Licensed features need an active license: an expired one disables them (the javadoc of
//     isCcrAllowed: "only disabled when the license has expired or if the mode is not ...").
//   - Cross-cluster replication is the feature "ccr", minimum PLATINUM (CcrConstants), checked
//     on the follower and on the leader's license.
//   - Certificate-model cross-cluster search is not a licensed feature: Basic suffices.
package license

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/ecklink/ecklink/internal/peertext"
)

// Types, as Elasticsearch spells them in GET /_license (license.type).
const (
	Basic      = "basic"
	Standard   = "standard"
	Gold       = "gold"
	Platinum   = "platinum"
	Enterprise = "enterprise"
	Trial      = "trial"
)

// Statuses (license.status).
const (
	Active  = "active"
	Expired = "expired"
	Invalid = "invalid"
)

// License is what a cluster reports: its type and status. The zero value is unknown.
type License struct {
	Type   string
	Status string
}

// valid bounds what a peer may send: a lower-case word of at most 32 letters.
var valid = regexp.MustCompile(`^[a-z]{1,32}$`)

// Validate checks a license a peer sent, naming the bad field.
func (l License) Validate() error {
	if !valid.MatchString(l.Type) {
		return fmt.Errorf("type %q: want a license type such as enterprise, 1-32 lower-case letters", clip(l.Type))
	}
	if !valid.MatchString(l.Status) {
		return fmt.Errorf("status %q: want active, expired or invalid", clip(l.Status))
	}
	return nil
}

// Known reports whether the license was read.
func (l License) Known() bool { return l.Type != "" }

func (l License) String() string {
	if !l.Known() {
		return "unknown"
	}
	return l.Type + " (" + l.Status + ")"
}

// rank orders the operation modes as Elasticsearch does (License.OperationMode): a mode allows
// every feature of the modes below it. Trial allows everything. Unknown types rank 0.
var rank = map[string]int{Basic: 1, Standard: 2, Gold: 3, Platinum: 4, Enterprise: 5, Trial: 6}

// allows reports whether l allows a feature of minimum mode min.
func (l License) allows(min string) bool {
	return l.Status == Active && rank[l.Type] >= rank[min]
}

// Model names the security model of a link, as the API spells it.
type Model string

// Security models.
const (
	ModelAPIKey      Model = "apiKey"
	ModelCertificate Model = "certificate"
)

// Need is what a model needs of each cluster's license, in words.
func Need(m Model) string {
	if m == ModelCertificate {
		return "cross-cluster search needs no paid license; cross-cluster replication needs platinum, enterprise or trial, active, on both clusters"
	}
	return "the API-key model (Elasticsearch feature advanced-remote-cluster-security) needs an active enterprise or trial license on both clusters"
}

// Sufficient reports whether l allows a link of model m on its side. The certificate model's
// search needs nothing; whether a link replicates is the consumer's choice, unknown here, so
// the certificate model passes and Need says what replication takes.
func Sufficient(l License, m Model) bool {
	if m == ModelCertificate {
		return true
	}
	return l.allows(Enterprise)
}

// Cluster is one side of a link for a verdict.
type Cluster struct {
	// Name says which cluster it is, e.g. "the local Elasticsearch apps/ccs".
	Name    string
	License License
}

// Verdict is the preflight of a link.
type Verdict struct {
	// Sufficient is false when a known license does not allow the link.
	Sufficient bool
	// Unknown is true when a license is not known (and none known is insufficient).
	Unknown bool
	// Message names the clusters, their licenses and what is needed.
	Message string
}

// Check judges a link of model m between clusters.
func Check(m Model, clusters ...Cluster) Verdict {
	var bad, unknown, good []string
	for _, c := range clusters {
		switch {
		case !c.License.Known():
			unknown = append(unknown, c.Name)
		case !Sufficient(c.License, m):
			bad = append(bad, fmt.Sprintf("%s has a %s license", c.Name, c.License))
		default:
			good = append(good, fmt.Sprintf("%s: %s", c.Name, c.License))
		}
	}
	switch {
	case len(bad) > 0:
		return Verdict{Message: strings.Join(bad, "; ") + ": " + Need(m)}
	case len(unknown) > 0:
		return Verdict{Sufficient: true, Unknown: true, Message: "license of " + strings.Join(unknown, " and ") + " not known yet" + known(good)}
	}
	msg := strings.Join(good, "; ")
	if m == ModelCertificate {
		msg += " (" + Need(m) + ")"
	}
	return Verdict{Sufficient: true, Message: msg}
}

func known(good []string) string {
	if len(good) == 0 {
		return ""
	}
	return " (" + strings.Join(good, "; ") + ")"
}

// NonCompliant reports whether an Elasticsearch error message is the license refusal of the
// API-key model's feature.
func NonCompliant(msg string) bool {
	return strings.Contains(msg, "current license is non-compliant for [advanced-remote-cluster-security]")
}

// clip bounds peer text for an error message: printable characters, at most 32 bytes.
func clip(s string) string { return peertext.Clean(s, 32) }
