package peering

import (
	"fmt"
	"slices"
	"testing"
)

func TestPeerCapabilities(t *testing.T) {
	many := make([]string, 0, 40)
	for i := range 40 {
		many = append(many, fmt.Sprintf("f%d", i))
	}
	for _, tc := range []struct {
		name string
		in   []string
		want int
		has  []string
	}{
		{name: "none (0.1.0)", in: nil, want: 0},
		{name: "known and unknown kept", in: []string{CapabilityExportCA, "future-thing"}, want: 2, has: []string{CapabilityExportCA, "future-thing"}},
		{name: "malformed dropped", in: []string{"Export-CA", "x y", "", CapabilityExportCA, string(make([]byte, 100))}, want: 1, has: []string{CapabilityExportCA}},
		{name: "duplicates once", in: []string{CapabilityExportCA, CapabilityExportCA}, want: 1},
		{name: "bounded", in: many, want: maxCapabilities},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := peerCapabilities(tc.in)
			if len(got) != tc.want {
				t.Fatalf("got %v, want %d entries", got, tc.want)
			}
			for _, h := range tc.has {
				if !(SessionInfo{Capabilities: got}).HasCapability(h) {
					t.Fatalf("%v lacks %s", got, h)
				}
			}
			if !slices.IsSorted(got) {
				t.Fatalf("%v is not sorted", got)
			}
		})
	}
}
