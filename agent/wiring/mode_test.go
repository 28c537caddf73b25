package wiring

import (
	"testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

func TestMode(t *testing.T) {
	tests := []struct {
		name  string
		specs []v1alpha1.Wiring // spec.wiring of the RemoteClusters of one Elasticsearch
		want  Mode
		edits bool
	}{
		{"none: the agent wires", nil, Managed, true},
		{"defaulted", []v1alpha1.Wiring{""}, Managed, true},
		{"managed", []v1alpha1.Wiring{v1alpha1.WiringManaged}, Managed, true},
		{"manual", []v1alpha1.Wiring{v1alpha1.WiringManual}, Manual, false},
		{"one manual keeps the agent's hands off", []v1alpha1.Wiring{v1alpha1.WiringManaged, v1alpha1.WiringManual, ""}, Manual, false},
		{"in any order", []v1alpha1.Wiring{v1alpha1.WiringManual, v1alpha1.WiringManaged}, Manual, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := Managed
			for _, w := range tt.specs {
				mode = mode.Join(ParseMode(w))
			}
			if mode != tt.want || mode.Edits() != tt.edits {
				t.Errorf("mode = %v (edits %v), want %v (edits %v)", mode, mode.Edits(), tt.want, tt.edits)
			}
		})
	}
}

// TestModeStringIsTheAPIValue: every mode has an API value, and parses back to itself.
func TestModeStringIsTheAPIValue(t *testing.T) {
	for _, m := range []Mode{Managed, Manual} {
		if got := ParseMode(v1alpha1.Wiring(m.String())); got != m {
			t.Errorf("ParseMode(%q) = %v, want %v", m.String(), got, m)
		}
	}
}
