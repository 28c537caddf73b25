package esim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Faults answers chosen requests with an Elasticsearch error instead of the node (component
// tests of the agent's failure paths). The zero value injects nothing.
type Faults struct {
	mu    sync.Mutex
	rules []Fault
	hits  int
}

// Fault answers the requests of Method on paths starting with Prefix with Status and an
// Elasticsearch error body of ErrType.
type Fault struct {
	Method, Prefix string
	Status         int
	ErrType        string
}

// Set replaces the faults (none: the node serves every request again).
func (f *Faults) Set(rules ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules, f.hits = rules, 0
}

// Count is how many requests were answered with a fault since Set.
func (f *Faults) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// Wrap serves next unless a fault matches the request.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		var hit *Fault
		for i := range f.rules {
			if rule := f.rules[i]; r.Method == rule.Method && strings.HasPrefix(r.URL.Path, rule.Prefix) {
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
		w.WriteHeader(hit.Status)
		fmt.Fprintf(w, `{"error":{"root_cause":[{"type":%q,"reason":"injected"}],"type":%q,"reason":"injected"},"status":%d}`, hit.ErrType, hit.ErrType, hit.Status)
	})
}
