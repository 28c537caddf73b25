package failpoint

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]map[string]int{
		"":                   nil,
		"  ":                 nil,
		"a/b":                {"a/b": 1},
		"a/b=3, c/d":         {"a/b": 3, "c/d": 1},
		"a/b=x,,c/d=0":       {"a/b": 1, "c/d": 1},
		"exporter/x=2,=5,y=": {"exporter/x": 2, "y": 1},
	} {
		if got := parse(in); !maps.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("parse(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestUnarmedIsInert(t *testing.T) {
	if armed != nil {
		t.Skip(EnvVar + " is set in this environment")
	}
	for _, n := range Names {
		Inject(n)
	}
	if allocs := testing.AllocsPerRun(100, func() { Inject(ImporterAfterSecretWrite) }); allocs != 0 {
		t.Errorf("Inject allocates %v times when unarmed", allocs)
	}
}

// TestKills runs this test binary again with a failpoint armed for its second hit: the child
// passes the first and dies of SIGKILL at the second, after naming it on stderr.
func TestKills(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		Inject("test/step")
		os.Stdout.WriteString("first hit passed\n")
		Inject("test/step")
		os.Stdout.WriteString("second hit passed\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKills$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"=other,test/step=2")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child did not fail: %v\n%s", err, out.String())
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want SIGKILL", ws)
	}
	if !strings.Contains(out.String(), "first hit passed") || strings.Contains(out.String(), "second hit passed") {
		t.Errorf("child output %q: want only the first hit passed", out.String())
	}
	if !strings.Contains(errOut.String(), "failpoint test/step: hit 2") {
		t.Errorf("stderr %q does not name the failpoint", errOut.String())
	}
}
