package pemutil

import (
	"crypto/x509"
	"sort"
	"time"
)

// MaxRetainedCAs bounds the CAs kept for one holder (an alias, a trust owner) across rotations:
// ECK renews a CA yearly or early, so eight covers years of renewals and any overlap.
const MaxRetainedCAs = 8

// Retain is the one CA-retention policy: the current CAs first (deduplicated, in their order),
// then the previous ones that are still valid at now, newest expiry first, at most
// MaxRetainedCAs in all. A stale copy of an old CA keeps verifying until it expires, so keeping
// it costs nothing and covers a peer whose update is still in flight. skip, when set, leaves out
// CAs by fingerprint (e.g. those the user trusts already).
func Retain(current, previous []*x509.Certificate, now time.Time, skip func(fingerprint string) bool) []*x509.Certificate {
	seen := map[string]bool{}
	var out []*x509.Certificate
	for _, c := range current {
		if fp := Fingerprint(c); !seen[fp] && (skip == nil || !skip(fp)) {
			seen[fp] = true
			out = append(out, c)
		}
	}
	var kept []*x509.Certificate
	for _, c := range previous {
		if fp := Fingerprint(c); !seen[fp] && (skip == nil || !skip(fp)) && now.Before(c.NotAfter) {
			seen[fp] = true
			kept = append(kept, c)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].NotAfter.After(kept[j].NotAfter) })
	out = append(out, kept...)
	if len(out) > MaxRetainedCAs {
		out = out[:MaxRetainedCAs]
	}
	return out
}
