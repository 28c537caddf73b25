package peering

// Acknowledged reports whether peer has applied the latest content published for resource: the
// peer acknowledged its current sequence, or announced it as applied when its stream opened.
// It is false for a resource never published to peer, or withdrawn. Callers use it to act only
// once a peer holds some content, e.g. to promote a new agent CA only after every peer trusts it.
func (m *Manager) Acknowledged(peer, resource string) bool {
	ps := m.knownPeer(peer)
	if ps == nil {
		return false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e := ps.entries[resource]
	return e != nil && !e.removed && e.delivered >= e.seq
}
