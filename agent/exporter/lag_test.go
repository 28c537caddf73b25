package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// TestEvaluateLag: each way a consumer can fall behind a rotation starts a warning at its due
// time and not before, and the warning clears once the consumer catches up.
func TestEvaluateLag(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	cfg := LagConfig{CAGrace: 10 * time.Minute, TrustExpiry: 7 * 24 * time.Hour, KeyLead: 24 * time.Hour}
	old, cur := strings.Repeat("a", 64), strings.Repeat("b", 64)
	year := 365 * 24 * time.Hour
	expiry := map[string]time.Time{old: now.Add(30 * 24 * time.Hour), cur: now.Add(year)}
	tests := []struct {
		name     string
		v        lagView
		want     string        // lagReasons
		deadline time.Time     // of the first warning
		next     time.Duration // until the next warning may start (0: none)
		detail   string        // in the first warning's detail
	}{
		{name: "new CA within the grace period",
			v:    lagView{currentCA: cur, caSent: now.Add(-9 * time.Minute), applied: []string{old}, caExpiry: expiry},
			next: time.Minute},
		{name: "new CA not applied after the grace period",
			v:    lagView{currentCA: cur, caSent: now.Add(-11 * time.Minute), applied: []string{old}, caExpiry: expiry},
			want: v1alpha1.ReasonPeerCANotApplied, deadline: now.Add(30 * 24 * time.Hour), next: 23 * 24 * time.Hour},
		{name: "new CA applied: clears",
			v:    lagView{currentCA: cur, caSent: now.Add(-11 * time.Minute), applied: []string{old, cur}, caExpiry: expiry},
			next: year - 7*24*time.Hour},
		{name: "new CA not sent yet (stream down before it was published)",
			v:    lagView{currentCA: cur, applied: []string{old}, caExpiry: expiry},
			next: 23 * 24 * time.Hour},
		{name: "trusted CAs expire within the threshold",
			v:    lagView{currentCA: old, applied: []string{old}, caExpiry: map[string]time.Time{old: now.Add(6 * 24 * time.Hour)}},
			want: v1alpha1.ReasonPeerTrustExpiring, deadline: now.Add(6 * 24 * time.Hour)},
		{name: "one trusted CA lasts: no warning",
			v:    lagView{currentCA: cur, applied: []string{old, cur}, caExpiry: map[string]time.Time{old: now.Add(time.Hour), cur: now.Add(year)}},
			next: year - 7*24*time.Hour},
		{name: "both CA warnings",
			v:    lagView{currentCA: cur, caSent: now.Add(-time.Hour), applied: []string{old}, caExpiry: map[string]time.Time{old: now.Add(time.Hour), cur: now.Add(year)}},
			want: v1alpha1.ReasonPeerCANotApplied + "," + v1alpha1.ReasonPeerTrustExpiring, deadline: now.Add(time.Hour)},
		{name: "new key, old key expires in 2 days",
			v:    lagView{keyID: "new", appliedKey: "old", appliedKeyExpires: now.Add(48 * time.Hour)},
			next: 24 * time.Hour},
		{name: "new key not in effect 23h before the old expires",
			v:    lagView{keyID: "new", appliedKey: "old", appliedKeyExpires: now.Add(23 * time.Hour)},
			want: v1alpha1.ReasonPeerKeyNotInEffect, deadline: now.Add(23 * time.Hour)},
		{name: "new key written, not in effect, 23h before the old expires",
			v:    lagView{keyID: "new", appliedKey: "old", writtenKey: "new", appliedKeyExpires: now.Add(23 * time.Hour)},
			want: v1alpha1.ReasonPeerKeyNotInEffect, deadline: now.Add(23 * time.Hour), detail: "waiting for its Elasticsearch to load it"},
		{name: "new key in effect: clears",
			v: lagView{keyID: "new", appliedKey: "new", appliedKeyExpires: now.Add(year)}},
		{name: "old key that never expires",
			v: lagView{keyID: "new", appliedKey: "old"}},
		{name: "certificate model (no API key): the CA warnings only",
			v:    lagView{currentCA: cur, caSent: now.Add(-time.Hour), applied: []string{old}, caExpiry: map[string]time.Time{old: now.Add(time.Hour), cur: now.Add(year)}},
			want: v1alpha1.ReasonPeerCANotApplied + "," + v1alpha1.ReasonPeerTrustExpiring, deadline: now.Add(time.Hour)},
		{name: "certificate model: CA applied, clears",
			v:    lagView{currentCA: cur, caSent: now.Add(-time.Hour), applied: []string{old, cur}, caExpiry: map[string]time.Time{old: now.Add(time.Hour), cur: now.Add(year)}},
			next: year - 7*24*time.Hour},
		{name: "no status yet",
			v: lagView{currentCA: cur, keyID: "new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, next := evaluateLag(cfg, tt.v, now)
			if got := lagReasons(ws); got != tt.want {
				t.Fatalf("warnings %q, want %q (%+v)", got, tt.want, ws)
			}
			if len(ws) > 0 && !ws[0].deadline.Equal(tt.deadline) {
				t.Errorf("deadline %s, want %s", ws[0].deadline, tt.deadline)
			}
			if len(ws) > 0 && !strings.Contains(ws[0].detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", ws[0].detail, tt.detail)
			}
			var gotNext time.Duration
			if !next.IsZero() {
				gotNext = next.Sub(now)
			}
			if gotNext != tt.next {
				t.Errorf("next warning in %s, want %s", gotNext, tt.next)
			}
		})
	}
	// The defaults apply to a zero LagConfig.
	ws, _ := evaluateLag(LagConfig{}, lagView{currentCA: cur, caSent: now.Add(-DefaultLagCAGrace), applied: []string{old}, caExpiry: expiry}, now)
	if lagReasons(ws) != v1alpha1.ReasonPeerCANotApplied {
		t.Fatalf("default grace: %+v", ws)
	}
}
