// Package memtrim returns the heap an agent no longer uses to the operating system once a burst
// of work is over.
//
// The Go runtime sets its next heap goal from what its last collection marked (GOGC: twice it)
// and keeps the memory up to that goal. A collection that runs during a burst of work (a
// thousand links connecting, a resync pass over 100 RemoteClusters) marks the burst's in-flight
// objects too: at 1,000 links east's agent held a goal of 69-81 MB while 19 MB was live when
// collected at rest, and its resident size followed the goal, not the live heap.
//
// A Trimmer checks every Interval. When no collection ran since the previous check (the burst
// is over) and either the runtime's heap goal has grown more than Slack above the goal the last
// trim left, or the runtime keeps more than Slack of free heap it has not returned, it collects
// and returns the free heap at once (debug.FreeOSMemory), at most once per MinGap: one
// collection of the live heap (milliseconds) and no more than one in MinGap, for a goal set from
// what is live at rest. A goal that grew because the agent holds more (more links) is measured
// again by one trim and then left alone.
//
// The collector's pace: between two collections the heap grows to GOGC percent above what the
// last one marked, and an agent at rest holds its resident size near that goal, whatever it
// trims after. The agent runs at DefaultGCPercent (SetGCPercent) unless GOGC is set.
//
// The free heap kept: between two collections at rest the runtime keeps the pages the last one
// freed, up to its goal, to allocate into again, so an idle agent's resident size sits near the
// goal (twice the live heap) rather than the live heap. At 1,000 links that was ~20 MB of
// east's ~60 MB of heap; one more collection every MinGap (tens of milliseconds of CPU at that
// size) gives them back.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// DefaultInterval is how often a Trimmer looks.
	DefaultInterval = 5 * time.Second
	// DefaultMinGap is the least time between two trims.
	DefaultMinGap = 30 * time.Second
	// DefaultSlack is how far the heap goal may grow above the last trim's before a quiet
	// moment trims again.
	DefaultSlack = 8 << 20
)

// DefaultGCPercent is the agent's GOGC when the environment sets none: the heap grows half the
// live heap between two collections instead of the runtime's default of a whole one. At 1,000
// links east's agent (the consuming side) holds ~25-30 MB live and allocates ~1 MB/s at rest.
// The same build in the same bench (1,000 links from nothing, then idle, then restarts), GOGC=100
// against 50: east's idle RSS 95 MiB on average (largest sample 104) against 86 (87); CPU at
// rest 1.10 % against 0.62 % (noise: 0.53 % and 0.65 % for west); 1,000 links connected in 45
// s against 43 s; restart convergence 18/24 s against 18/23 s.
const DefaultGCPercent = 50

// SetGCPercent sets the collector to DefaultGCPercent unless GOGC (read with getenv) is set, in
// which case the runtime has applied it already, and returns the percent in force.
func SetGCPercent(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(DefaultGCPercent)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}

// Config tunes a Trimmer. The zero value is usable.
type Config struct {
	// Interval between looks, MinGap between trims, Slack of the heap goal (defaults above
	// when zero).
	Interval, MinGap time.Duration
	Slack            uint64
	// Logger for a debug line per trim (none when nil).
	Logger hclog.Logger
	// runtime is the Go runtime's; tests replace it.
	runtime gcRuntime
	now     func() time.Time
}

// gcRuntime is what a Trimmer reads of the collector and asks of it.
type gcRuntime interface {
	// cycles is the number of completed collections, goal the heap goal in bytes.
	cycles() uint64
	goal() uint64
	// kept is the free heap the runtime holds and has not returned to the operating system.
	kept() uint64
	// free collects and returns the free heap to the operating system.
	free()
}

// Trimmer returns free heap to the operating system after bursts of work.
type Trimmer struct {
	cfg Config
	// seen is the collection count at the previous look; trimGoal the heap goal the last trim
	// left and trimmed when it ran (zero: never).
	seen     uint64
	trimGoal uint64
	trimmed  time.Time
}

// New returns a Trimmer for cfg.
func New(cfg Config) *Trimmer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = DefaultMinGap
	}
	if cfg.Slack == 0 {
		cfg.Slack = DefaultSlack
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.runtime == nil {
		cfg.runtime = goRuntime{}
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return &Trimmer{cfg: cfg, seen: cfg.runtime.cycles()}
}

// Run looks every Interval until ctx ends. It never fails.
func (t *Trimmer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			t.check()
		}
	}
}

// check trims when the agent is quiet, the goal has grown past the slack or the free heap kept
// is past it, and the last trim is MinGap old, and reports whether it did.
func (t *Trimmer) check() bool {
	rt := t.cfg.runtime
	n := rt.cycles()
	quiet := n == t.seen
	t.seen = n
	now := t.cfg.now()
	goal, kept := rt.goal(), rt.kept()
	worth := goal > t.trimGoal+t.cfg.Slack || kept > t.cfg.Slack
	if !quiet || !worth || (!t.trimmed.IsZero() && now.Sub(t.trimmed) < t.cfg.MinGap) {
		return false
	}
	start := time.Now()
	rt.free()
	t.seen, t.trimGoal, t.trimmed = rt.cycles(), rt.goal(), now // its own collection is not work
	t.cfg.Logger.Debug("free heap returned to the operating system", "duration", time.Since(start), "heap_goal_before", goal, "heap_goal", t.trimGoal, "heap_kept", kept)
	return true
}

// goRuntime is the Go runtime's collector.
type goRuntime struct{}

func (goRuntime) cycles() uint64 { return readUint64("/gc/cycles/total:gc-cycles") }
func (goRuntime) goal() uint64   { return readUint64("/gc/heap/goal:bytes") }
func (goRuntime) kept() uint64   { return readUint64("/memory/classes/heap/free:bytes") }
func (goRuntime) free()          { debug.FreeOSMemory() }

func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
