// Package worker drains a client-go workqueue: the one loop every controller of the agent runs
// (Get, process, Done, until the queue shuts down), written once so that each package keeps only
// what it does with an item and when it queues it again.
package worker

import (
	"context"
	"sync"

	"k8s.io/client-go/util/workqueue"
)

// Run drains queue with n workers side by side until the queue shuts down, which Run does when
// ctx ends; it returns once every worker has. process handles one item; Run marks the item done
// after it returns, so process must not call Done, and its requeue decisions (Add, AddAfter,
// AddRateLimited, Forget) are its own. The queue never hands out an item that is being processed,
// so one item is never processed by two workers at once. n below 1 runs one worker.
func Run[K comparable](ctx context.Context, queue workqueue.TypedInterface[K], n int, process func(context.Context, K)) {
	stop := context.AfterFunc(ctx, queue.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for more := true; more; {
				more = next(ctx, queue, process)
			}
		})
	}
	wg.Wait()
}

// next processes one item; false once the queue has shut down.
func next[K comparable](ctx context.Context, queue workqueue.TypedInterface[K], process func(context.Context, K)) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	process(ctx, key)
	return true
}
