package exporter

import (
	"context"
	"slices"
	"sync"

	"github.com/ecklink/ecklink/internal/worker"
)

// workers drain the queue side by side. Items of one exported Elasticsearch run one at a time
// (the gate): its keys, its signing CA ConfigMap and its resource are edited by one item at a
// time, and an Elasticsearch that is slow to answer holds up only its own items, so one slow
// Elasticsearch cannot delay another's CA. CA items ("ca", "exportca") make no Elasticsearch
// call and pass the gate: they publish the newest bundle from the informer cache under pubMu.
const workers = 4

// runWorkers runs the workers until ctx ends.
func (e *Exporter) runWorkers(ctx context.Context) {
	worker.Run(ctx, e.queue, workers, e.processGated)
}

// processGated runs it once the gate lets it. A parked item is done at once (worker.Run marks
// it), and is queued again when its turn comes.
func (e *Exporter) processGated(ctx context.Context, it item) {
	key := e.gateKey(it)
	ok, next := e.gate.enter(key, it)
	for _, p := range next {
		e.queue.Add(p)
	}
	if !ok {
		return
	}
	e.process(ctx, it)
	if key != "" {
		for _, p := range e.gate.leave(key) {
			e.queue.Add(p)
		}
	}
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
			if exp, ok := e.cfg.Cache.ClusterExportSpec(ns, name); ok {
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
		if exp, ok := e.cfg.Cache.ClusterExportSpec(it.ns, it.name); ok {
			return "es/" + it.ns + "/" + exp.Spec.ElasticsearchRef.Name
		}
		return "export/" + it.ns + "/" + it.name
	case "gc":
		return "gc"
	}
	return ""
}

// gate lets one item per key run; the others wait, parked in the order they came. When the
// running item leaves, the key goes to the oldest parked item, and stays taken for it until a
// worker picks it up: the queue's order cannot pass it over (a resync queues every link again,
// and at 200 links of one Elasticsearch an item left to the queue's order waited over 5 minutes
// in the faults suite's TestLoad200).
type gate struct {
	mu     sync.Mutex
	busy   map[string]bool
	parked map[string][]item
	// handed are the items the key they were parked under was handed to.
	handed map[item]string
}

// enter reports whether it may run now under key ("" runs free); if not, it is parked under key
// (once). next are items to queue again: when it was handed a key it no longer needs (its key
// changed meanwhile), that key goes on to the next parked item.
func (g *gate) enter(key string, it item) (ok bool, next []item) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy == nil {
		g.busy, g.parked, g.handed = map[string]bool{}, map[string][]item{}, map[item]string{}
	}
	if k, was := g.handed[it]; was {
		delete(g.handed, it)
		if k == key {
			return true, nil // the key was kept for it
		}
		next = g.handOffLocked(k)
	}
	if key == "" {
		return true, next
	}
	if g.busy[key] {
		if !slices.Contains(g.parked[key], it) {
			g.parked[key] = append(g.parked[key], it)
		}
		return false, next
	}
	g.busy[key] = true
	return true, next
}

// leave hands key to the oldest item parked under it, which the caller queues again, or frees it.
func (g *gate) leave(key string) []item {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.handOffLocked(key)
}

func (g *gate) handOffLocked(key string) []item {
	q := g.parked[key]
	if len(q) == 0 {
		delete(g.busy, key)
		delete(g.parked, key)
		return nil
	}
	next := q[0]
	if len(q) == 1 {
		delete(g.parked, key)
	} else {
		g.parked[key] = q[1:]
	}
	g.handed[next] = key
	return []item{next}
}
