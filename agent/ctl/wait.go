package ctl

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often waits check the state; progressEvery bounds the silence between
// progress lines while the state does not change.
const (
	pollInterval  = time.Second
	progressEvery = 10 * time.Second
)

// poll calls check until it reports done, ctx ends or --timeout passes. It prints the state
// check describes whenever it changes, and every progressEvery while it does not. It returns a
// not-ready error naming what was awaited and the last state on timeout.
func (g *globals) poll(ctx context.Context, what string, check func(ctx context.Context) (bool, string, error)) error {
	deadline := time.Now().Add(g.timeout)
	start, last, lastAt := time.Now(), "", time.Time{}
	for {
		done, state, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			if !lastAt.IsZero() {
				g.progress("%s: done after %s", what, time.Since(start).Round(100*time.Millisecond))
			}
			return nil
		}
		if state != last || time.Since(lastAt) >= progressEvery {
			g.progress("waiting for %s: %s", what, state)
			last, lastAt = state, time.Now()
		}
		if time.Now().After(deadline) {
			return notReadyErr(fmt.Errorf("gave up waiting for %s after %s: %s", what, g.timeout, state))
		}
		select {
		case <-ctx.Done():
			return notReadyErr(fmt.Errorf("stopped waiting for %s: %w", what, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}

// hintAfter is how long a wait runs before its progress lines suggest what may be wrong.
const hintAfter = 10 * time.Second

// hint returns text once the wait that started at start has run for hintAfter, else "".
func hint(start time.Time, text string) string {
	if time.Since(start) < hintAfter {
		return ""
	}
	return text
}
