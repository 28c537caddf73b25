package exporter

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// ReasonInvalidCAStatus refuses a CAStatus that is malformed or one too many.
const ReasonInvalidCAStatus = "InvalidCAStatus"

// The CA path's echo. A consumer that took a renewed CA from a shared bundle (ExportCA) reports it
// once per consuming Elasticsearch, as a CAStatus for the group of its links naming that bundle
// (peer capability "ca-status"), not as a LinkStatus per link. The exporter applies it to each
// link of the group it holds as if the link's LinkStatus had reported those CAs (propagation
// metric, lag verdict), keeps the newest per group, and merges it into a LinkStatus observed
// before it: whichever of the two the consumer observed last tells which CAs a link applied.

// OnCAStatus validates a CAStatus and applies it to the links of its group.
func (e *Exporter) OnCAStatus(peer string, g link.CAGroup, s *peerv1.CAStatus) error {
	if err := validateCAStatus(s); err != nil {
		return invalid(ReasonInvalidCAStatus, err)
	}
	e.mu.Lock()
	held := e.caStatus[peer]
	if prev, known := held[g]; known && prev.GetObserved().AsTime().After(s.GetObserved().AsTime()) {
		e.mu.Unlock()
		return nil // an older report resent after a newer one
	} else if !known && len(held) >= e.cfg.LinksPerPeer {
		// Each group has at least one link: more groups than links a peer may hold is a flood.
		e.mu.Unlock()
		return &peering.RefusalError{Reason: ReasonInvalidCAStatus, Message: fmt.Sprintf("more than %d CA statuses (limits.linksPerPeer)", e.cfg.LinksPerPeer)}
	}
	if held == nil {
		held = map[link.CAGroup]*peerv1.CAStatus{}
		e.caStatus[peer] = held
	}
	held[g] = s
	var exports []item
	applied := 0
	for id, st := range e.links[peer] {
		if st.removed || st.status == nil || st.caRef == "" || !g.Has(id, st.caRef) {
			continue // a link without a LinkStatus yet picks the group's status up with its first
		}
		if next := withCAStatus(st.status, s); next != st.status {
			applied++
			if _, export := e.recordStatusLocked(st, next); export.kind != "" {
				exports = append(exports, export)
			}
		}
	}
	e.mu.Unlock()
	e.log.Debug("ca status applied", "peer", peer, "elasticsearch", g.Namespace+"/"+g.Elasticsearch, "links", applied)
	for _, x := range exports {
		e.queue.Add(x)
	}
	return nil
}

// OnCAStatusRemoved forgets a group's status: its links report their CAs in their LinkStatus again.
func (e *Exporter) OnCAStatusRemoved(peer string, g link.CAGroup) {
	e.mu.Lock()
	delete(e.caStatus[peer], g)
	e.mu.Unlock()
}

// withCAStatusLocked returns the link status s with the CAs of its group's CAStatus, when the
// consumer observed that after s. e.mu is held.
func (e *Exporter) withCAStatusLocked(peer string, id link.ID, st *linkState, s *peerv1.LinkStatus) *peerv1.LinkStatus {
	if st.caRef == "" {
		return s
	}
	g := link.CAGroup{ExportCA: st.caRef, Namespace: id.Namespace, Elasticsearch: id.Elasticsearch}
	if cs, ok := e.caStatus[peer][g]; ok {
		return withCAStatus(s, cs)
	}
	return s
}

// withCAStatus returns s with the applied CAs of cs when cs was observed after s (s itself when
// not, or when they already agree).
func withCAStatus(s *peerv1.LinkStatus, cs *peerv1.CAStatus) *peerv1.LinkStatus {
	if !cs.GetObserved().AsTime().After(s.GetObserved().AsTime()) || slices.Equal(s.GetAppliedCaFingerprints(), cs.GetAppliedCaFingerprints()) {
		return s
	}
	next := proto.Clone(s).(*peerv1.LinkStatus)
	next.AppliedCaFingerprints = append([]string(nil), cs.GetAppliedCaFingerprints()...)
	next.Observed = cs.GetObserved()
	return next
}

// validateCAStatus bounds what a CAStatus carries, as validateLinkStatus does for a LinkStatus.
func validateCAStatus(s *peerv1.CAStatus) error {
	if s.GetObserved() == nil {
		return fmt.Errorf("invalid CA status: observed is missing")
	}
	if err := s.GetObserved().CheckValid(); err != nil {
		return fmt.Errorf("invalid CA status: observed: %w", err)
	}
	if err := link.CheckFingerprints("applied_ca_fingerprints", s.GetAppliedCaFingerprints()); err != nil {
		return fmt.Errorf("invalid CA status: %w", err)
	}
	return nil
}
