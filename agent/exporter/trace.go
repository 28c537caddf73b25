package exporter

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Why an item ran. A CA update must cost one ExportCA per peer and nothing per link (no key
// reconcile, no Elasticsearch call), and the peer's LinkStatus echo of it must not queue the
// link: the debug log of each pass says what queued it, and linkPasses counts the link
// reconciles (TestStatusNeedsReconcile guards the echo's side).

// Triggers of an item.
const (
	trigResync     = "resync"       // the periodic pass
	trigImport     = "import"       // the peer's import request
	trigImportGone = "import-gone"  // the peer removed its import request
	trigStatus     = "link-status"  // the peer's LinkStatus changed what the link's reconcile decides
	trigInventory  = "inventory"    // the peer's inventory no longer lists the link
	trigPeerGone   = "peer-gone"    // the peering ended
	trigPeerCaps   = "capabilities" // the peer announced other capabilities
	trigExport     = "export"       // the ClusterExport or the exported Elasticsearch changed
	trigCA         = "ca"           // the exported Elasticsearch's transport CA changed
	trigRequeue    = "requeue"      // a pass asked to come back
	trigRetry      = "retry"        // a pass failed or waits
)

// triggers records, per queued item, what queued it since its last pass.
type triggers struct {
	mu sync.Mutex
	m  map[item]map[string]bool
	// linkPasses counts the link reconciles run (kind "link").
	linkPasses atomic.Int64
}

func (t *triggers) note(it item, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[item]map[string]bool{}
	}
	if t.m[it] == nil {
		t.m[it] = map[string]bool{}
	}
	t.m[it][why] = true
}

// take returns what queued it, sorted and joined, and forgets it.
func (t *triggers) take(it item) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for why := range t.m[it] {
		out = append(out, why)
	}
	delete(t.m, it)
	slices.Sort(out)
	return strings.Join(out, ",")
}

// enqueue queues an item, saying why.
func (e *Exporter) enqueue(it item, why string) {
	e.trig.note(it, why)
	e.queue.Add(it)
}
