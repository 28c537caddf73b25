// Package trigger records why a work item was queued: every way into a queue names itself, and
// the pass that takes the item logs what queued it since its last pass.
package trigger

import (
	"slices"
	"strings"
	"sync"
)

// Set holds, per queued key, the reasons it was queued since it was last taken. The zero value
// is ready to use.
type Set[K comparable] struct {
	mu sync.Mutex
	m  map[K]map[string]bool
}

// Note records that key was queued because of why.
func (s *Set[K]) Note(key K, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[K]map[string]bool{}
	}
	if s.m[key] == nil {
		s.m[key] = map[string]bool{}
	}
	s.m[key][why] = true
}

// Take returns what queued key, sorted and joined with commas, and forgets it.
func (s *Set[K]) Take(key K) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m[key]))
	for why := range s.m[key] {
		out = append(out, why)
	}
	delete(s.m, key)
	slices.Sort(out)
	return strings.Join(out, ",")
}
