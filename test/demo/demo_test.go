package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemoUnattended runs `make demo`'s program the way `make demo DEMO_ARGS=-non-interactive`
// does, as a separate process, and requires it to reach the end: two environments, the chart
// installed with helm, token pairing, a link, a CA renewal by ECK that reaches the peer, and no
// disconnected _remote/info sample (the demo exits 1 otherwise).
func TestDemoUnattended(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the test bed (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "go", "run", ".", "-non-interactive").CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("demo failed after %s: %v\n%s", time.Since(start).Round(time.Second), err, text)
	}
	for _, want := range []string{
		"agentctl pair token --context west --peer east",
		"$ agentctl pair join <token> --context east",
		"east's CA ConfigMap holds the new CA",
		"RemoteCluster west-logs: Ready=True",
		" 0 disconnected after the first connection",
		"Done: the link follows every rotation",
		"demo: stopping agents",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("demo ran to the end in %s", time.Since(start).Round(time.Second))
}
