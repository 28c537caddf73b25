package logging

import (
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/backoff"
)

func TestThrottle(t *testing.T) {
	clock := backoff.NewFakeClock(time.Unix(0, 0))
	th := NewThrottle(10*time.Second, clock.Now)
	type step struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}
	steps := []step{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{time.Second, "a", false, 0},
		{0, "b", true, 0}, // keys are independent
		{8 * time.Second, "a", true, 2},
		{time.Second, "a", false, 0},
		{10 * time.Second, "a", true, 1},
		{10 * time.Second, "a", true, 0},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		ok, n := th.Allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d: Allow(%q) = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer tha..."},
		{"line\nforged=1", 64, "line?forged=1"},
		{"tab\tand\x1b[31mansi", 64, "tab?and?[31mansi"},
		{"héllo", 2, "h..."}, // é is two bytes: not cut in half
		{"bad\xffutf8", 64, "bad?utf8"},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := Clip(tt.in, tt.max); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
