package importer

import "k8s.io/apimachinery/pkg/types"

// PeerStateChanged evaluates again the links of peer, whose stream came up or went down, so
// that their PeerConnected and Ready conditions follow (agent/peerhealth).
func (im *Importer) PeerStateChanged(peer string) {
	for _, rc := range im.cfg.Cache.RemoteClustersShared() {
		if rc.Spec.Peer == peer {
			im.enqueue(types.NamespacedName{Namespace: rc.Namespace, Name: rc.Spec.ElasticsearchRef.Name}, trigPeerState)
		}
	}
}
