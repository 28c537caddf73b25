package exporter

import (
	"context"
	"slices"
	"sync"
)

// workers drain the queue side by side. Items of one exported Elasticsearch run one at a time
// (the gate): its keys, its signing CA ConfigMap and its resource are edited by one item at a
// time, and an Elasticsearch that is slow to answer holds up only its own items, so one slow
// Elasticsearch cannot delay another's CA. CA items ("ca", "exportca") make no Elasticsearch
// call and pass the gate: they publish the newest bundle from the informer cache under pubMu.
const workers = 4

// runWorkers runs the workers until the queue shuts down.
func (e *Exporter) runWorkers(ctx context.Context) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				it, quit := e.queue.Get()
				if quit {
					return
				}
				key := e.gateKey(it)
				if key != "" && !e.gate.enter(key, it) {
					e.queue.Done(it) // parked: queued again when the running item leaves
					continue
				}
				e.process(ctx, it)
				if key != "" {
					for _, p := range e.gate.leave(key) {
						e.queue.Add(p)
					}
				}
			}
		})
	}
	wg.Wait()
}

// gateKey names the Elasticsearch an item works on; "" for items that pass the gate.
func (e *Exporter) gateKey(it item) string {
	switch it.kind {
	case "link":
		e.mu.Lock()
		st := e.links[it.peer][it.link]
		var ns, name string
		switch {
		case st == nil:
		case st.target != nil:
			ns, name = st.target.Namespace, st.target.Name
		case st.req != nil:
			ns, name = st.req.GetExportNamespace(), st.req.GetExportName()
			e.mu.Unlock()
			if exp, ok := e.cfg.Cache.ClusterExport(ns, name); ok {
				return "es/" + ns + "/" + exp.Spec.ElasticsearchRef.Name
			}
			return "export/" + ns + "/" + name
		}
		e.mu.Unlock()
		if name == "" {
			return ""
		}
		return "es/" + ns + "/" + name
	case "export":
		if exp, ok := e.cfg.Cache.ClusterExport(it.ns, it.name); ok {
			return "es/" + it.ns + "/" + exp.Spec.ElasticsearchRef.Name
		}
		return "export/" + it.ns + "/" + it.name
	case "gc":
		return "gc"
	}
	return ""
}

// gate lets one item per key run; the others wait, parked in the order they came, until it
// leaves. The order matters: the items parked under a key are queued again together, and one of
// them runs while the rest park again, so a random order would let an unlucky link wait for
// minutes behind the resyncs of 200 others (seen in the faults suite's TestLoad200).
type gate struct {
	mu     sync.Mutex
	busy   map[string]bool
	parked map[string][]item
}

// enter reports whether it may run now; if not, it is parked under key (once).
func (g *gate) enter(key string, it item) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy == nil {
		g.busy, g.parked = map[string]bool{}, map[string][]item{}
	}
	if g.busy[key] {
		if !slices.Contains(g.parked[key], it) {
			g.parked[key] = append(g.parked[key], it)
		}
		return false
	}
	g.busy[key] = true
	return true
}

// leave frees key and returns the items parked under it, oldest first.
func (g *gate) leave(key string) []item {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.busy, key)
	out := g.parked[key]
	delete(g.parked, key)
	return out
}
