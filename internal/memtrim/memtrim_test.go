package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// fakeRuntime is a collector driven by the test: free is one more collection and leaves the
// goal at rest.
type fakeRuntime struct {
	n, heapGoal, restGoal, freeKept uint64
	frees                           int
}

func (f *fakeRuntime) cycles() uint64 { return f.n }
func (f *fakeRuntime) goal() uint64   { return f.heapGoal }
func (f *fakeRuntime) kept() uint64   { return f.freeKept }
func (f *fakeRuntime) free()          { f.frees++; f.n++; f.heapGoal = f.restGoal; f.freeKept = 0 }

// TestTrimsAfterABurst: a look trims only when no collection ran since the previous look, the
// heap goal grew more than the slack above the last trim's or the runtime keeps more than the
// slack of free heap, and the last trim is MinGap old; a goal that grew for good is trimmed once,
// then left alone.
func TestTrimsAfterABurst(t *testing.T) {
	const mib = 1 << 20
	rt := &fakeRuntime{heapGoal: 40 * mib, restGoal: 40 * mib}
	now := time.Unix(0, 0)
	tr := New(Config{Slack: 8 * mib, MinGap: 30 * time.Second, runtime: rt, now: func() time.Time { return now }})
	steps := []struct {
		name    string
		advance time.Duration
		gcs     uint64 // collections the rest of the agent ran since the previous look
		goal    uint64 // the goal they left (0: unchanged)
		rest    uint64 // the goal a trim would leave (0: unchanged)
		kept    uint64 // the free heap the runtime keeps at the look
		trim    bool
	}{
		{"first look, quiet: the goal above zero's slack", 5 * time.Second, 0, 0, 0, 0, true},
		{"quiet, the goal is the trim's", 30 * time.Second, 0, 0, 0, 0, false},
		{"a burst: collections, goal 75 MiB", 5 * time.Second, 3, 75 * mib, 0, 0, false},
		{"quiet after the burst", 5 * time.Second, 0, 0, 0, 0, true},
		{"another burst", 5 * time.Second, 1, 75 * mib, 0, 0, false},
		{"quiet, 10s after the last trim", 5 * time.Second, 0, 0, 0, 0, false},
		{"quiet, 40s after the last trim", 30 * time.Second, 0, 0, 0, 0, true},
		{"quiet, goal at rest", 40 * time.Second, 0, 0, 0, 0, false},
		{"busy, goal grew within the slack", 5 * time.Second, 1, 46 * mib, 0, 0, false},
		{"quiet, within the slack", 35 * time.Second, 0, 0, 0, 0, false},
		{"more links: goal 60 MiB, at rest 56 MiB", 5 * time.Second, 2, 60 * mib, 56 * mib, 0, false},
		{"quiet: trimmed once", 5 * time.Second, 0, 0, 0, 0, true},
		{"quiet: the new rest is left alone", 60 * time.Second, 0, 0, 0, 0, false},
		{"collections at rest left 20 MiB free, kept", 20 * time.Second, 1, 0, 0, 20 * mib, false},
		{"quiet, 20 MiB kept: trimmed", 5 * time.Second, 0, 0, 0, 20 * mib, true},
		{"quiet, 20 MiB kept again, 10s after the trim", 10 * time.Second, 0, 0, 0, 20 * mib, false},
		{"quiet, 6 MiB kept, within the slack", 30 * time.Second, 0, 0, 0, 6 * mib, false},
		{"busy, 30 MiB kept", 5 * time.Second, 1, 0, 0, 30 * mib, false},
	}
	frees := 0
	for _, s := range steps {
		now = now.Add(s.advance)
		rt.n += s.gcs
		if s.goal != 0 {
			rt.heapGoal = s.goal
		}
		if s.rest != 0 {
			rt.restGoal = s.rest
		}
		rt.freeKept = s.kept
		if s.trim {
			frees++
		}
		if got := tr.check(); got != s.trim || rt.frees != frees {
			t.Errorf("%s: trimmed %v (%d trims in all), want %v (%d)", s.name, got, rt.frees, s.trim, frees)
		}
	}
}

// TestReturnsTheFreeHeap: with the Go runtime itself, a quiet look after a burst that grew the
// goal returns the burst's heap to the operating system.
func TestReturnsTheFreeHeap(t *testing.T) {
	tr := New(Config{Slack: 1 << 20})
	tr.trimGoal = goRuntime{}.goal()
	burst := make([][]byte, 0, 512)
	for range 512 {
		burst = append(burst, make([]byte, 64<<10)) // 32 MiB live while the burst runs
	}
	runtime.GC() // a collection during the burst: the goal grows to twice it
	runtime.KeepAlive(burst)
	burst = nil
	if tr.check() {
		t.Fatal("trimmed right after a collection")
	}
	before := released()
	if !tr.check() {
		t.Fatalf("a quiet look after the burst did not trim (goal %d, last trim's %d)", goRuntime{}.goal(), tr.trimGoal)
	}
	if after := released(); after <= before {
		t.Errorf("heap released to the OS %d bytes after the trim, %d before: want more", after, before)
	}
}

// TestRunStopsWithItsContext: Run looks on its interval and returns nil when ctx ends.
func TestRunStopsWithItsContext(t *testing.T) {
	rt := &fakeRuntime{heapGoal: 64 << 20}
	trims := make(chan struct{}, 10)
	tr := New(Config{Interval: 10 * time.Millisecond, runtime: trimSignal{rt, trims}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	select {
	case <-trims:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim within 10s of a quiet Run")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// trimSignal is a fakeRuntime that says when it was asked to free.
type trimSignal struct {
	*fakeRuntime
	trims chan struct{}
}

func (s trimSignal) free() { s.fakeRuntime.free(); s.trims <- struct{}{} }

func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestSetGCPercent: the agent's default applies unless GOGC chose the pace, which stays.
func TestSetGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	for _, tc := range []struct {
		name    string
		gogc    string
		current int // what the runtime runs at before the call
		want    int
	}{
		{"no GOGC", "", 100, DefaultGCPercent},
		{"GOGC chosen", "200", 200, 200},
		{"GOGC=off", "off", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(tc.current)
			got := SetGCPercent(func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			})
			if now := debug.SetGCPercent(tc.current); got != tc.want || now != tc.want {
				t.Errorf("SetGCPercent = %d, runtime at %d; want %d", got, now, tc.want)
			}
		})
	}
}
