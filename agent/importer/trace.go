package importer

import (
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/internal/trigger"
)

// Why a full reconcile ran. The CA path must not cost a full reconcile (it would cost
// Elasticsearch calls and API requests for every CA update), so every way into the queue names
// itself: the debug log of each pass says what queued it, and passes counts them, for the tests
// that guard the CA path.

// Triggers of a full reconcile; trig.Again adds trigger.Retry and trigger.Requeue after a pass.
const (
	trigResync     = "resync"          // the periodic pass
	trigStart      = "start"           // the first pass
	trigPeerGone   = "peer-gone"       // a peering ended
	trigSigning    = "signing"         // the signing CA rotation advanced
	trigRC         = "remote-cluster"  // a RemoteCluster's spec changed
	trigES         = "elasticsearch"   // the Elasticsearch resource's spec changed
	trigOwnObject  = "own-object"      // someone else changed the agent's ConfigMap or Secret
	trigAnswer     = "answer"          // a peer's answer that is not a CA-only change
	trigRemoved    = "answer-removed"  // a peer withdrew its answer
	trigCAFallback = "ca-path"         // the CA path handed the Elasticsearch over
	trigPeerState  = "peer-state"      // the peer's stream came up or went down
	trigTransport  = "local-transport" // the local transport CA changed (certificate model)
	trigConflict   = "conflict"        // a pass lost a write race
)

// triggers records, per queued Elasticsearch, what queued it since its last pass.
type triggers struct {
	trigger.Set[types.NamespacedName]
	// passes counts the full reconciles started, running those under way.
	passes, running atomic.Int64
}

// enqueue queues a full reconcile of an Elasticsearch, saying why.
func (im *Importer) enqueue(key types.NamespacedName, why string) {
	im.trig.Note(key, why)
	im.queue.Add(key)
}
