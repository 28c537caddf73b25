package peering

import (
	"testing"
	"time"
)

// TestResyncAllowance: a peer's first session (and its first after ResyncInterval) may send
// UpdateBurst plus ResyncAllowance updates at once, its resend of everything; the allowance is
// spent, never refilled, and a session opened again within the interval gets the burst only.
func TestResyncAllowance(t *testing.T) {
	m, err := NewManager(Config{Environment: "west", Handler: newFakeHandler(), UpdateRate: 50, UpdateBurst: 100, ResyncAllowance: 2000, ResyncInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	burstOf := func(b *tokenBucket, at time.Time) int {
		n := 0
		for b.allow(at) {
			n++
		}
		return n
	}
	tests := []struct {
		name string
		peer string
		at   time.Time
		want int
	}{
		{"first session: burst and allowance", "east", t0, 2100},
		{"again within the interval: burst only", "east", t0.Add(30 * time.Second), 100},
		{"another peer has its own", "north", t0.Add(30 * time.Second), 2100},
		{"after the interval: the allowance again", "east", t0.Add(2 * time.Minute), 2100},
	}
	for _, tc := range tests {
		if got := burstOf(m.updateLimiter(tc.peer, tc.at), tc.at); got != tc.want {
			t.Errorf("%s: %d updates accepted at once, want %d", tc.name, got, tc.want)
		}
	}
	// Spent, the allowance does not come back: the bucket refills to the burst only.
	b := m.updateLimiter("south", t0)
	for range 50 {
		b.allow(t0)
	}
	if got := burstOf(b, t0.Add(10*time.Minute)); got != 2050 {
		t.Errorf("after 50 updates and a pause: %d accepted, want the 2,050 left", got)
	}
	if got := burstOf(b, t0.Add(20*time.Minute)); got != 100 {
		t.Errorf("once spent, a pause gives %d, want the burst (100)", got)
	}
	none, err := NewManager(Config{Environment: "west", Handler: newFakeHandler(), UpdateRate: 50, UpdateBurst: 100, ResyncAllowance: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := burstOf(none.updateLimiter("east", t0), t0); got != 100 {
		t.Errorf("without an allowance: %d accepted at once, want 100", got)
	}
}
