package importer

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// esFaults makes an Elasticsearch answer chosen requests with an error, as a cluster that is
// overloaded, restarting or missing a privilege does.
type esFaults struct {
	mu    sync.Mutex
	rules []esFault
	hits  int
}

// esFault answers the requests of method on paths starting with prefix with status and an
// Elasticsearch error body of errType.
type esFault struct {
	method, prefix string
	status         int
	errType        string
}

// set replaces the faults (none: the node serves every request again).
func (f *esFaults) set(rules ...esFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules, f.hits = rules, 0
}

// count is how many requests were answered with a fault since set.
func (f *esFaults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func (f *esFaults) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		var hit *esFault
		for i := range f.rules {
			if rule := f.rules[i]; r.Method == rule.method && strings.HasPrefix(r.URL.Path, rule.prefix) {
				hit = &rule
				f.hits++
				break
			}
		}
		f.mu.Unlock()
		if hit == nil {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(hit.status)
		fmt.Fprintf(w, `{"error":{"root_cause":[{"type":%q,"reason":"injected"}],"type":%q,"reason":"injected"},"status":%d}`, hit.errType, hit.errType, hit.status)
	})
}
