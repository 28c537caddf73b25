package trigger

import "testing"

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		notes []string
		want  string
	}{
		{"nothing queued it", nil, ""},
		{"one reason", []string{"resync"}, "resync"},
		{"reasons sorted, each once", []string{"retry", "import", "retry"}, "import,retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set[string]
			for _, why := range tt.notes {
				s.Note("a", why)
			}
			s.Note("b", "other")
			if got := s.Take("a"); got != tt.want {
				t.Errorf("Take = %q, want %q", got, tt.want)
			}
			if got := s.Take("a"); got != "" {
				t.Errorf("second Take = %q, want \"\" (forgotten)", got)
			}
			if got := s.Take("b"); got != "other" {
				t.Errorf("Take(b) = %q, want other", got)
			}
		})
	}
}
