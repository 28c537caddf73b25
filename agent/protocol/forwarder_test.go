package protocol

import (
	"testing"

	"github.com/ecklink/ecklink/agent/metrics"
)

// TestForwarderSetOnce: the Router is set once; a stream before Set and a second Set are wiring
// bugs and panic.
func TestForwarderSetOnce(t *testing.T) {
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s did not panic", name)
			}
		}()
		f()
	}
	var f Forwarder
	panics("a call before Set", func() { f.OnAck("west", "trust", 1) })
	r := &Router{metrics: metrics.New()}
	f.Set(r)
	if f.router() != r {
		t.Fatal("Forwarder does not forward to the Router set")
	}
	panics("a second Set", func() { f.Set(r) })
}
