package trigger

import (
	"strings"
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		notes []string
		want  string
	}{
		{"nothing queued it", nil, ""},
		{"one reason", []string{"resync"}, "resync"},
		{"reasons sorted, each once", []string{"retry", "import", "retry"}, "import,retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set[string]
			for _, why := range tt.notes {
				s.Note("a", why)
			}
			s.Note("b", "other")
			if got := s.Take("a"); got != tt.want {
				t.Errorf("Take = %q, want %q", got, tt.want)
			}
			if got := s.Take("a"); got != "" {
				t.Errorf("second Take = %q, want \"\" (forgotten)", got)
			}
			if got := s.Take("b"); got != "other" {
				t.Errorf("Take(b) = %q, want other", got)
			}
		})
	}
}

// calls records what Again asked of a queue.
type calls []string

func (c *calls) Forget(key string)                    { *c = append(*c, "forget "+key) }
func (c *calls) AddAfter(key string, d time.Duration) { *c = append(*c, "after "+d.String()+" "+key) }
func (c *calls) AddRateLimited(key string)            { *c = append(*c, "backoff "+key) }

func TestAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  time.Duration
		failed bool
		want   string // the queue's calls
		why    string // the reason noted
	}{
		{"failed: backoff, the reason retry", time.Minute, true, "backoff a", Retry},
		{"asked to come back", time.Minute, false, "forget a,after 1m0s a", Requeue},
		{"done", 0, false, "forget a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set[string]
			var q calls
			s.Again(&q, "a", tc.after, tc.failed)
			if got := strings.Join(q, ","); got != tc.want {
				t.Errorf("queue calls %q, want %q", got, tc.want)
			}
			if got := s.Take("a"); got != tc.why {
				t.Errorf("reason %q, want %q", got, tc.why)
			}
		})
	}
}
