// Package trigger records why a work item was queued: every way into a queue names itself, and
// the pass that takes the item logs what queued it since its last pass.
package trigger

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Why Again puts a key back.
const (
	Retry   = "retry"   // a pass failed (or waits for something that comes by itself)
	Requeue = "requeue" // a pass asked to come back
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

// Queue is the part of a rate-limited workqueue that Again puts a key back through.
type Queue[K comparable] interface {
	Forget(key K)
	AddAfter(key K, d time.Duration)
	AddRateLimited(key K)
}

// Again puts key back in q once its pass is over, noting why: with q's backoff when the pass
// failed (Retry), after the delay the pass asked for (Requeue), never otherwise. The backoff is
// forgotten unless the pass failed.
func (s *Set[K]) Again(q Queue[K], key K, after time.Duration, failed bool) {
	switch {
	case failed:
		s.Note(key, Retry)
		q.AddRateLimited(key)
	case after > 0:
		q.Forget(key)
		s.Note(key, Requeue)
		q.AddAfter(key, after)
	default:
		q.Forget(key)
	}
}
