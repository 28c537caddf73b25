package peering

import "errors"

// ErrResync ends a session that the application asked to restart (Manager.Resync).
var ErrResync = errors.New("stream restarted to resync")

// Resync ends the current stream with peer, if any; the dialing side reconnects at once (a
// session that opened resets its backoff). On the new stream each side resends everything the
// other did not apply: the application uses it to have the peer send again requests it
// refused without keeping them. Cheap for links: Elasticsearch connections do not go through
// the stream.
func (m *Manager) Resync(peer string) {
	ps := m.knownPeer(peer)
	if ps != nil {
		ps.detachCurrent(ErrResync)
	}
}
