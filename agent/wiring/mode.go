package wiring

import "github.com/ecklink/ecklink/agent/api/v1alpha1"

// Mode is how ecklink's entries reach an Elasticsearch resource. It is parsed from the API once
// (ParseMode); callers ask it what to do (Edits) and never compare it with a constant, so that a
// new mode is defined here alone (see the package doc).
type Mode int

const (
	// Managed: the agent edits the resource itself, through the Editor, and records what it
	// added so that removal takes only that.
	Managed Mode = iota
	// Manual: the agent never edits the resource; it reports the snippet to commit (Snippet,
	// TransportCASnippet) and waits until the resource has it.
	Manual
)

// ParseMode reads spec.wiring of a RemoteCluster. Empty (the CRD defaults it) and any value the
// CRD enum would reject are Managed, as before this type existed.
func ParseMode(w v1alpha1.Wiring) Mode {
	switch w {
	case v1alpha1.WiringManual:
		return Manual
	default:
		return Managed
	}
}

// Join is the mode of an Elasticsearch that several RemoteClusters name: the one that leaves the
// resource most to the user wins (one RemoteCluster asking for manual wiring keeps the agent's
// hands off the resource for all of them). The zero Mode (Managed) is the identity.
func (m Mode) Join(o Mode) Mode {
	if o.rank() > m.rank() {
		return o
	}
	return m
}

// rank orders the modes by how much they leave to the user.
func (m Mode) rank() int {
	switch m {
	case Manual:
		return 1
	default:
		return 0
	}
}

// Edits reports whether the agent writes the resource itself (else it reports a snippet).
func (m Mode) Edits() bool { return m == Managed }

// String is the API spelling of the mode.
func (m Mode) String() string {
	switch m {
	case Manual:
		return string(v1alpha1.WiringManual)
	default:
		return string(v1alpha1.WiringManaged)
	}
}
