// Package task runs a set of long-running functions together: the first one to fail cancels the
// others, and a cancelled context is a clean exit.
package task

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Task is a long-running function that returns when ctx ends or it fails.
type Task func(ctx context.Context) error

// Named pairs a task with a name for error messages.
type Named struct {
	Name string
	Run  Task
}

// Run runs every task until ctx ends or one returns. It returns the first error that is not a
// result of cancellation, wrapped with the task's name, or nil.
func Run(ctx context.Context, tasks ...Named) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, t := range tasks {
		wg.Go(func() {
			err := t.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() { first = fmt.Errorf("%s: %w", t.Name, err) })
			}
			// A task that returns, with or without an error, ends the whole set: the agent must
			// not keep running with a part missing.
			cancel()
		})
	}
	wg.Wait()
	return first
}

// Every calls f every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
