package harness

import (
	"context"
	"testing"
	"time"
)

// WaitFor polls cond every 250ms until it holds, and returns how long that took; the test
// fails when within passes or ctx ends first, with cond's last detail.
func WaitFor(ctx context.Context, t testing.TB, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (%s)", what, within, detail)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (%s)", what, ctx.Err(), detail)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
