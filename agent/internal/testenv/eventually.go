package testenv

import (
	"testing"
	"time"
)

// Eventually polls ok every 5ms until it holds, and fails tb naming what it waited for once
// timeout has passed.
func Eventually(tb testing.TB, timeout time.Duration, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
