package backoff

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestNextGrowsAndCaps(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		rand float64
		want []time.Duration
	}{
		{
			name: "no jitter doubles to the cap",
			cfg:  Config{Initial: time.Second, Max: 10 * time.Second, Jitter: -1},
			want: []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name: "jitter only shortens",
			cfg:  Config{Initial: time.Second, Max: 4 * time.Second, Jitter: 0.5},
			rand: 1,
			want: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second},
		},
		{
			name: "multiplier three",
			cfg:  Config{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 3, Jitter: -1},
			want: []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 90 * time.Millisecond, 270 * time.Millisecond, 810 * time.Millisecond, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rand
			cfg := tt.cfg
			cfg.Rand = func() float64 { return r }
			b := New(cfg, nil)
			for i, want := range tt.want {
				if got := b.Next(); got != want {
					t.Fatalf("Next() #%d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got := b.Next(); got != tt.want[0] {
				t.Fatalf("after Reset, Next() = %v, want %v", got, tt.want[0])
			}
		})
	}
}

func TestManyAttemptsDoNotOverflow(t *testing.T) {
	b := New(Config{Initial: time.Hour, Max: 24 * time.Hour, Rand: func() float64 { return 0 }}, nil)
	for range 200 {
		if d := b.Next(); d <= 0 || d > 24*time.Hour {
			t.Fatalf("Next() = %v, want in (0, 24h]", d)
		}
	}
}

func TestClassOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassNone},
		{"plain", base, ClassRetryLater},
		{"later", RetryLater(base), ClassRetryLater},
		{"soon", RetrySoon(base), ClassRetrySoon},
		{"give up", GiveUp(base), ClassGiveUp},
		{"wrapped give up", fmt.Errorf("failed to dial: %w", GiveUp(base)), ClassGiveUp},
		{"outer wins", RetrySoon(GiveUp(base)), ClassRetrySoon},
		{"joined", errors.Join(base, GiveUp(base)), ClassGiveUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassOf(tt.err); got != tt.want {
				t.Fatalf("ClassOf() = %v, want %v", got, tt.want)
			}
			if tt.err != nil && !errors.Is(tt.err, base) {
				t.Fatalf("errors.Is(err, base) = false, want true")
			}
		})
	}
	var gu *GiveUpError
	if !errors.As(fmt.Errorf("x: %w", GiveUp(base)), &gu) || gu.Err != base {
		t.Fatalf("errors.As(GiveUpError) failed")
	}
	if RetryLater(nil) != nil || RetrySoon(nil) != nil || GiveUp(nil) != nil {
		t.Fatalf("wrapping nil must stay nil")
	}
}

func TestRetryWithFakeClock(t *testing.T) {
	clock := NewFakeClock(time.Unix(1000, 0))
	b := New(Config{Initial: time.Second, Max: 8 * time.Second, Jitter: -1}, clock)
	errs := []error{errors.New("dial"), RetrySoon(errors.New("dropped")), errors.New("dial"), nil}
	var delays []time.Duration
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- Retry(context.Background(), b, func(context.Context) error {
			err := errs[calls]
			calls++
			return err
		}, func(_ error, d time.Duration) { delays = append(delays, d) })
	}()
	for range 3 {
		if !clock.WaitForWaiters(1, 5*time.Second) {
			t.Fatal("Retry did not wait on the clock")
		}
		clock.Advance(8 * time.Second)
	}
	if err := <-done; err != nil {
		t.Fatalf("Retry() = %v, want nil", err)
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("delays = %v, want %v", delays, want)
	}
}

func TestRetryStops(t *testing.T) {
	t.Run("give up", func(t *testing.T) {
		b := New(Config{}, NewFakeClock(time.Unix(0, 0)))
		want := GiveUp(errors.New("unpaired"))
		if err := Retry(context.Background(), b, func(context.Context) error { return want }, nil); err != want {
			t.Fatalf("Retry() = %v, want %v", err, want)
		}
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		b := New(Config{}, NewFakeClock(time.Unix(0, 0)))
		err := Retry(ctx, b, func(context.Context) error { cancel(); return errors.New("x") }, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Retry() = %v, want context.Canceled", err)
		}
	})
}

func TestFakeClock(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	ch := c.After(time.Minute)
	if c.Waiters() != 1 {
		t.Fatalf("Waiters() = %d, want 1", c.Waiters())
	}
	c.Advance(59 * time.Second)
	select {
	case <-ch:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Second)
	select {
	case got := <-ch:
		if !got.Equal(time.Unix(60, 0)) {
			t.Fatalf("fired at %v", got)
		}
	default:
		t.Fatal("did not fire")
	}
	select {
	case <-c.After(0):
	default:
		t.Fatal("After(0) must fire at once")
	}
}
