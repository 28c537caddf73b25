package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// wait is how long a test waits for something that should happen at once.
const wait = 5 * time.Second

func TestRunDrainsAndStops(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		queued  int
	}{
		{name: "one worker drains what was queued", workers: 1, queued: 5},
		{name: "four workers drain what was queued", workers: 4, queued: 50},
		{name: "no workers asked for runs one", workers: 0, queued: 3},
		{name: "an empty queue stops at once", workers: 2, queued: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := workqueue.NewTyped[int]()
			for i := range tt.queued {
				q.Add(i)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // the queue shuts down at once; what it holds is still handed out
			var mu sync.Mutex
			seen := map[int]int{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Run(ctx, q, tt.workers, func(_ context.Context, k int) {
					mu.Lock()
					seen[k]++
					mu.Unlock()
				})
			}()
			select {
			case <-done:
			case <-time.After(wait):
				t.Fatal("Run did not return after ctx ended")
			}
			if len(seen) != tt.queued {
				t.Fatalf("processed %d items, want %d", len(seen), tt.queued)
			}
			for k, n := range seen {
				if n != 1 {
					t.Errorf("item %d processed %d times, want once", k, n)
				}
			}
			if !q.ShuttingDown() {
				t.Error("the queue was not shut down")
			}
		})
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	q := workqueue.NewTyped[string]()
	ctx, cancel := context.WithCancel(t.Context())
	processed := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, q, 3, func(_ context.Context, k string) { processed <- k })
	}()
	q.Add("a")
	select {
	case k := <-processed:
		if k != "a" {
			t.Fatalf("processed %q, want a", k)
		}
	case <-time.After(wait):
		t.Fatal("an item queued while running was not processed")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Run did not return after ctx ended")
	}
	if !q.ShuttingDown() {
		t.Error("the queue was not shut down")
	}
}

func TestRunWorkersInParallel(t *testing.T) {
	const n = 3
	q := workqueue.NewTyped[int]()
	for i := range n {
		q.Add(i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var in sync.WaitGroup
	in.Add(n)
	all := make(chan struct{})
	go func() { in.Wait(); close(all) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, q, n, func(context.Context, int) {
			in.Done()
			<-all // returns only once all n items are being processed at the same time
		})
	}()
	select {
	case <-all:
	case <-time.After(wait):
		t.Fatalf("%d workers did not process %d items side by side", n, n)
	}
	cancel()
	<-done
}

// TestRunMarksDoneAfterProcess: an item queued again while it is processed waits until process
// returns (Done has not been called yet), and is processed again after (Done was called), also when
// process returned early.
func TestRunMarksDoneAfterProcess(t *testing.T) {
	q := workqueue.NewTyped[string]()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var running, overlap, calls atomic.Int32
	again := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, q, 4, func(_ context.Context, k string) {
			if running.Add(1) > 1 {
				overlap.Add(1)
			}
			defer running.Add(-1)
			switch calls.Add(1) {
			case 1:
				q.Add(k) // queued again while processed: must wait for Done
				time.Sleep(50 * time.Millisecond)
				return // early return: Done still follows
			case 2:
				close(again)
			}
		})
	}()
	q.Add("x")
	select {
	case <-again:
	case <-time.After(wait):
		t.Fatal("an item queued again while processed was not processed again after it was done")
	}
	if overlap.Load() != 0 {
		t.Error("an item was processed by two workers at once")
	}
	cancel()
	<-done
	if q.Len() != 0 {
		t.Errorf("queue holds %d items after Run, want 0", q.Len())
	}
}
