package pod

import (
	"maps"
	"net/http"
	"strings"
	"sync"
)

// callCounter counts the REST requests a pod served, by method and path (ids collapsed), so a
// benchmark can show which Elasticsearch calls an operation cost.
type callCounter struct {
	mu sync.Mutex
	by map[string]int64
}

func (c *callCounter) add(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]int64{}
	}
	c.by[r.Method+" "+pathShape(r.URL.Path)]++
}

// pathShape keeps the API's own path segments (those starting with '_') and replaces the others
// (ids, names, aliases) with '*': GET /_security/api_key and PUT /_cluster/settings stay,
// PUT /_security/cross_cluster/api_key/<id> becomes .../api_key/*.
func pathShape(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, s := range parts {
		if s != "" && !strings.HasPrefix(s, "_") && !(i > 0 && parts[i-1] == "_security") {
			parts[i] = "*"
		}
	}
	return "/" + strings.Join(parts, "/")
}

// Calls returns how many REST requests the pod served, by "METHOD /path/shape".
func (p *Pod) Calls() map[string]int64 {
	p.calls.mu.Lock()
	defer p.calls.mu.Unlock()
	return maps.Clone(p.calls.by)
}
