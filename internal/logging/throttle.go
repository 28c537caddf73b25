package logging

import (
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Throttle lets a log line through at most once per interval per key and counts the lines it
// held back, so that a flood from a client (refused pairing attempts, failed handshakes) costs
// one line per interval instead of one per attempt. Keys must come from a fixed set (reasons),
// never from what a client sent: the table holds one entry per key.
type Throttle struct {
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*throttled
}

type throttled struct {
	last       time.Time
	suppressed int
}

// NewThrottle returns a Throttle with the given interval; now defaults to time.Now.
func NewThrottle(interval time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	return &Throttle{interval: interval, now: now, keys: map[string]*throttled{}}
}

// Allow reports whether a line for key may be logged now and, when it may, how many lines for
// key were held back since the last one that was.
func (t *Throttle) Allow(key string) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e, ok := t.keys[key]
	if !ok {
		t.keys[key] = &throttled{last: now}
		return true, 0
	}
	if now.Sub(e.last) < t.interval {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// Clip bounds a string that a client or peer sent before it reaches a log line: at most max
// bytes (whole runes, with "..." appended when cut), control characters and invalid UTF-8
// replaced by '?', so that a value can neither flood a log nor forge or break its lines.
func Clip(s string, max int) string {
	var b strings.Builder
	for n := 0; len(s) > 0; {
		r, size := utf8.DecodeRuneInString(s)
		if n+size > max {
			b.WriteString("...")
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = '?'
		}
		b.WriteRune(r)
		n, s = n+size, s[size:]
	}
	return b.String()
}
