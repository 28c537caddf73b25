package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// Suite is the shared world of one end-to-end test package: started once in TestMain, used by
// every test of the package, stopped at the end. Its logs stay on disk when a test failed (or
// with ECKLINK_KEEP_LOGS set) and the agents' last lines are printed.
type Suite struct {
	// Name names the package in the start line and the log directory.
	Name string
	// Options start the world; Dir and AgentBinary are filled in.
	Options Options
	// Setup runs once the world is up (pairing, for instance); an error fails the package.
	Setup func(ctx context.Context, w *World) error
	// Teardown runs after the tests, before the world stops, whatever happened.
	Teardown func()
	// Passed runs after every test passed, before the world stops; an error fails the package.
	Passed func(w *World) error
	// LogLines is how many lines of each agent's log a failure prints (default 80).
	LogLines int
}

// Main runs the package's tests in the suite's world and returns the exit code for os.Exit.
// With -short no world starts and *world stays nil (see RequireWorld).
func (s Suite) Main(m *testing.M, world **World) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	code, dir := s.run(m, world)
	if code == 0 && dir != "" && os.Getenv("ECKLINK_KEEP_LOGS") == "" {
		_ = os.RemoveAll(dir)
	}
	return code
}

func (s Suite) run(m *testing.M, world **World) (int, string) {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ecklink-"+s.Name+"-")
	if err != nil {
		return fail(err), ""
	}
	opts := s.Options
	opts.Dir = dir
	if opts.AgentBinary, err = BuildAgent(ctx, dir); err != nil {
		return fail(err), dir
	}
	start := time.Now()
	w, err := Start(ctx, opts)
	if err != nil {
		return fail(err), dir
	}
	*world = w
	defer w.Stop()
	fmt.Printf("%s: %d environments with agents started in %s (logs in %s)\n", s.Name, len(opts.Names), time.Since(start).Round(time.Millisecond), dir)
	if s.Setup != nil {
		if err := s.Setup(ctx, w); err != nil {
			return fail(err), dir
		}
	}
	if s.Teardown != nil {
		defer s.Teardown()
	}
	code := m.Run()
	if code != 0 {
		lines := s.LogLines
		if lines == 0 {
			lines = 80
		}
		fmt.Println(w.Logs(lines))
		return code, dir
	}
	if s.Passed != nil {
		if err := s.Passed(w); err != nil {
			return fail(err), dir
		}
	}
	return 0, dir
}

// RequireWorld skips a test that needs the suite's world when it did not start (-short).
func RequireWorld(t testing.TB, w *World) {
	t.Helper()
	if w == nil {
		t.Skip("end-to-end test: needs the test bed (not with -short)")
	}
}
