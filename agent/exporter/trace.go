package exporter

import (
	"sync/atomic"

	"github.com/ecklink/ecklink/internal/trigger"
)

// Why an item ran. A CA update must cost one ExportCA per peer and nothing per link (no key
// reconcile, no Elasticsearch call), and the peer's LinkStatus echo of it must not queue the
// link: the debug log of each pass says what queued it, and linkPasses counts the link
// reconciles (TestStatusNeedsReconcile guards the echo's side).

// Triggers of an item; trig.Again adds trigger.Retry after a pass that failed or waits.
const (
	trigResync     = "resync"        // the periodic pass
	trigImport     = "import"        // the peer's import request
	trigImportGone = "import-gone"   // the peer removed its import request
	trigStatus     = "link-status"   // the peer's LinkStatus changed what the link's reconcile decides
	trigInventory  = "inventory"     // the peer's inventory no longer lists the link
	trigPeerGone   = "peer-gone"     // the peering ended
	trigPeerCaps   = "capabilities"  // the peer announced other capabilities
	trigExport     = "export"        // the ClusterExport or the exported Elasticsearch changed
	trigCA         = "ca"            // the exported Elasticsearch's transport CA changed
	trigRequeue    = trigger.Requeue // a pass asked to come back (trig.Again)
)

// triggers records, per queued item, what queued it since its last pass.
type triggers struct {
	trigger.Set[item]
	// linkPasses counts the link reconciles run (kind "link").
	linkPasses atomic.Int64
}

// enqueue queues an item, saying why.
func (e *Exporter) enqueue(it item, why string) {
	e.trig.Note(it, why)
	e.queue.Add(it)
}
