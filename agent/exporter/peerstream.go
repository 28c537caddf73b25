package exporter

import (
	"slices"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// PeerStateChanged evaluates again the exports that peer holds links to, whose stream came up
// or went down, so that their PeerConnected condition follows (agent/peerhealth).
func (e *Exporter) PeerStateChanged(peer string) {
	e.mu.Lock()
	exports := map[item]bool{}
	for _, st := range e.links[peer] {
		if st.req != nil && !st.removed {
			exports[item{kind: "export", ns: st.req.GetExportNamespace(), name: st.req.GetExportName()}] = true
		}
	}
	e.mu.Unlock()
	for it := range exports {
		e.queue.Add(it)
	}
}

// linkedPeers are the peers holding links of an export, as its status lists them.
func linkedPeers(links []v1alpha1.ExportLink) []string {
	var out []string
	for _, l := range links {
		if !slices.Contains(out, l.Peer) {
			out = append(out, l.Peer)
		}
	}
	return out
}
