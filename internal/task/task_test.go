package task

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		tasks   []Named
		cancel  bool
		wantErr error
	}{
		{
			name:    "first error cancels the rest",
			tasks:   []Named{{"fails", func(context.Context) error { return boom }}, {"waits", waitForCancel}},
			wantErr: boom,
		},
		{
			name:   "cancellation is a clean exit",
			tasks:  []Named{{"a", waitForCancel}, {"b", waitForCancel}},
			cancel: true,
		},
		{
			name:  "a task ending without error ends the set",
			tasks: []Named{{"done", func(context.Context) error { return nil }}, {"waits", waitForCancel}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.cancel {
				go func() { time.Sleep(10 * time.Millisecond); cancel() }()
			}
			err := Run(ctx, tt.tasks...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run() = %v, want %v", err, tt.wantErr)
			}
			if ctx.Err() == context.DeadlineExceeded {
				t.Fatal("tasks were not cancelled")
			}
		})
	}
}

func waitForCancel(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 5*time.Millisecond, func() { calls <- struct{}{} })
	}()
	for range 3 {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("f not called every interval")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return when ctx ended")
	}
}
