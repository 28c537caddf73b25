package peering

import (
	"errors"
	"fmt"
)

// MaxSequence is the highest sequence this package sends or accepts (2^63-1). A sequence is a
// uint64 on the wire, but a peer announcing or sending one near 2^64 would make the next
// sequence wrap to 0, below everything applied, and freeze the resource for good (every later
// update refused as a rollback). Sequences also end up in int64 fields of Kubernetes status.
// Honest peers count from 1 by one per change, so 2^63 is never reached.
const MaxSequence = 1<<63 - 1

// ReasonSequenceTooLarge refuses an update whose sequence is above MaxSequence.
const ReasonSequenceTooLarge = "SequenceTooLarge"

// errSequenceExhausted reports that a resource has no sequence left above the current one.
var errSequenceExhausted = errors.New("no sequence left: the peer announced the highest one applied")

// nextSequence returns seq+1, or an error when that would pass MaxSequence (checked
// arithmetic: the only way sequences grow).
func nextSequence(seq uint64) (uint64, error) {
	if seq >= MaxSequence {
		return 0, fmt.Errorf("%w (%d)", errSequenceExhausted, seq)
	}
	return seq + 1, nil
}

// maxApplied bounds the entries of a peer's Open.applied: an honest peer lists the resources
// it received from this agent (up to two per link, at most 100,000 links per peer, and the
// trust bundle); the map is kept until the next Open to number resources published later.
const maxApplied = 1 << 18

// checkApplied validates the applied sequences a peer announced in Open against the outbox
// entries held for it: each value at most MaxSequence, and below it for a resource held here
// (which must continue above it). The error names the resource.
func (ps *peerState) checkApplied(applied map[string]uint64) error {
	if len(applied) > maxApplied {
		return fmt.Errorf("%w: Open announces %d applied resources, at most %d allowed", ErrProtocol, len(applied), maxApplied)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for r, seq := range applied {
		if seq > MaxSequence {
			return fmt.Errorf("%w: Open announces applied sequence %d for %q, above the highest allowed %d", ErrProtocol, seq, clean(r, 128), uint64(MaxSequence))
		}
		if _, held := ps.entries[r]; held && seq == MaxSequence {
			return fmt.Errorf("%w: Open announces applied sequence %d for %q: no sequence is left above it", ErrProtocol, seq, clean(r, 128))
		}
	}
	return nil
}
