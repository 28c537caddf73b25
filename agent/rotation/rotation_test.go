package rotation

import (
	"encoding/json"
	"testing"
	"time"
)

func TestPending(t *testing.T) {
	tests := []struct {
		name string
		id   string
		st   Status
		want bool
	}{
		{name: "no request", id: "", want: false},
		{name: "not taken up", id: "r1", want: true},
		{name: "another request's report", id: "r2", st: Status{Request: "r1", Phase: Done}, want: true},
		{name: "under way", id: "r1", st: Status{Request: "r1", Phase: Staged}, want: true},
		{name: "done", id: "r1", st: Status{Request: "r1", Phase: Done}, want: false},
		{name: "failed", id: "r1", st: Status{Request: "r1", Phase: Failed}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.st.Pending(tt.id); got != tt.want {
				t.Errorf("Pending(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

// TestStatusJSON: the annotation's format, which agents and agentctl of other versions read,
// stays as it is; retireOld is written only when set.
func TestStatusJSON(t *testing.T) {
	updated := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{name: "signing CA", st: Status{Request: "r1", Phase: Done, Message: "m", OldCA: "o", NewCA: "n", Updated: updated},
			want: `{"request":"r1","phase":"Done","message":"m","oldCA":"o","newCA":"n","updated":"2026-01-02T03:04:05Z"}`},
		{name: "agent CA with retire-old", st: Status{Request: "r1", RetireOld: true, Phase: Staged, Message: "m", Updated: updated},
			want: `{"request":"r1","retireOld":true,"phase":"Staged","message":"m","updated":"2026-01-02T03:04:05Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.st)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("json %s, want %s", b, tt.want)
			}
			if got := ReadStatus(map[string]string{"k": string(b)}, "k"); got != tt.st {
				t.Errorf("ReadStatus = %+v, want %+v", got, tt.st)
			}
		})
	}
}

func TestReadStatusNoneOrInvalid(t *testing.T) {
	for _, a := range []map[string]string{nil, {}, {"k": "not json"}} {
		if got := ReadStatus(a, "k"); got != (Status{}) {
			t.Errorf("ReadStatus(%v) = %+v, want zero", a, got)
		}
	}
}
