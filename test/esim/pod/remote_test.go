package pod

import (
	"slices"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// TestDueRemotes: without a cap every remote is dialled each check; with one, the remotes never
// dialled come first, then those whose last result is oldest, so each is re-verified in turn.
func TestDueRemotes(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	remotes := []esim.RemoteClusterSettings{{Alias: "a"}, {Alias: "b"}, {Alias: "c"}, {Alias: "d"}}
	prev := map[string]remoteResult{
		"a": {connected: true, at: t0.Add(3 * time.Second)},
		"b": {connected: true, at: t0.Add(1 * time.Second)},
		"c": {connected: false, at: t0.Add(2 * time.Second)},
		// d: never dialled
	}
	for _, tc := range []struct {
		name string
		max  int
		want []bool
	}{
		{name: "no cap", max: 0, want: []bool{true, true, true, true}},
		{name: "cap above the remotes", max: 4, want: []bool{true, true, true, true}},
		{name: "cap 2: never dialled, then the oldest", max: 2, want: []bool{false, true, false, true}},
		{name: "cap 3", max: 3, want: []bool{false, true, true, true}},
		{name: "cap 1", max: 1, want: []bool{false, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dueRemotes(remotes, prev, tc.max); !slices.Equal(got, tc.want) {
				t.Fatalf("dial %v, want %v", got, tc.want)
			}
		})
	}
}
