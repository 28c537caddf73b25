// Package backoff provides a capped exponential backoff with jitter driven by an injectable clock,
// and a small taxonomy of errors (retry later, retry soon, give up) that retry loops act on.
//
// The clock is an interface so that tests advance time by hand instead of sleeping, as SPIRE's
// pkg/common/backoff does; the error classes follow Consul's leader_peering retry loop.
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Clock is the source of time for backoff waits and for anything else that wants fake time in tests.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config tunes a Backoff. The zero value is usable: every unset field takes its default.
type Config struct {
	// Initial is the first delay (default 500ms).
	Initial time.Duration
	// Max caps every delay (default 1m).
	Max time.Duration
	// Multiplier grows the delay after each attempt (default 2).
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised downwards, in (0,1]; 0 means the
	// default 0.2 and a negative value disables jitter. Jitter only shortens delays, so Max stays
	// a hard cap.
	Jitter float64
	// Rand returns a number in [0,1); nil uses math/rand/v2. Tests pin it.
	Rand func() float64
}

func (c Config) withDefaults() Config {
	if c.Initial <= 0 {
		c.Initial = 500 * time.Millisecond
	}
	if c.Max <= 0 {
		c.Max = time.Minute
	}
	if c.Max < c.Initial {
		c.Max = c.Initial
	}
	if c.Multiplier < 1 {
		c.Multiplier = 2
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = 0.2
	case c.Jitter < 0:
		c.Jitter = 0
	case c.Jitter > 1:
		c.Jitter = 1
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// Backoff computes successive delays. It is not safe for concurrent use: give each retry loop its own.
type Backoff struct {
	cfg      Config
	clock    Clock
	attempts int
}

// New returns a Backoff using cfg (defaults filled in) and clock (RealClock when nil).
func New(cfg Config, clock Clock) *Backoff {
	if clock == nil {
		clock = RealClock
	}
	return &Backoff{cfg: cfg.withDefaults(), clock: clock}
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.delay(b.attempts)
	if b.attempts < 64 {
		b.attempts++
	}
	return d
}

// Soon returns a short delay (the initial one, jittered) without counting an attempt; it is for
// errors that are expected to clear almost at once.
func (b *Backoff) Soon() time.Duration { return b.delay(0) }

// Reset starts the schedule again from Initial, typically after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Attempts returns how many delays Next handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

func (b *Backoff) delay(attempt int) time.Duration {
	d := float64(b.cfg.Initial) * math.Pow(b.cfg.Multiplier, float64(attempt))
	if d > float64(b.cfg.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.cfg.Max)
	}
	d -= d * b.cfg.Jitter * b.cfg.Rand()
	return time.Duration(d)
}

// Sleep waits d on the backoff's clock, or returns ctx.Err() if ctx ends first.
func (b *Backoff) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.clock.After(d):
		return nil
	}
}
