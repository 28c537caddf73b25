package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestNackReasonLabels: reasons outside the fixed set, as a peer may send any string, all count
// as "other", so a peer cannot create series; known reasons keep their name.
func TestNackReasonLabels(t *testing.T) {
	tests := []struct {
		name      string
		direction string
		reasons   []string
		want      map[string]float64 // label reason -> count
	}{
		{"known reasons by name", "sent", []string{"InvalidCA", "InvalidCA", "RateLimited"}, map[string]float64{"InvalidCA": 2, "RateLimited": 1}},
		{"peer reasons outside the set", "received", func() []string {
			var out []string
			for i := range 1000 {
				out = append(out, fmt.Sprintf("Made-Up-%d", i))
			}
			return append(out, "", "InvalidCA\n", "SequenceTooLarge")
		}(), map[string]float64{OtherReason: 1002, "SequenceTooLarge": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			for _, r := range tt.reasons {
				m.Nack("west", tt.direction, r)
			}
			if n := testutil.CollectAndCount(m.nacks); n != len(tt.want) {
				t.Fatalf("%d series, want %d", n, len(tt.want))
			}
			for reason, want := range tt.want {
				if got := testutil.ToFloat64(m.nacks.WithLabelValues("west", tt.direction, reason)); got != want {
					t.Errorf("nacks{reason=%q} = %v, want %v", reason, got, want)
				}
			}
		})
	}
	m := New()
	m.Nack("west", "sideways", "InvalidCA")
	if got := testutil.ToFloat64(m.nacks.WithLabelValues("west", "received", "InvalidCA")); got != 1 {
		t.Errorf("an unknown direction counted as %v under received, want 1", got)
	}
}
