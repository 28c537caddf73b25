package elastic

import (
	"context"
	"testing"
	"time"
)

func TestGetKey(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	live, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "live", Access: searchLogs, Expiration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "gone", Access: searchLogs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.InvalidateKeys(ctx, []string{gone.ID}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		id              string
		wantInvalidated bool
		wantExpiry      bool
		wantNotFound    bool
	}{
		{name: "live", id: live.ID, wantExpiry: true},
		{name: "invalidated", id: gone.ID, wantInvalidated: true},
		{name: "unknown", id: "nosuchkey00000000000", wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.c.GetKey(ctx, tt.id)
			if tt.wantNotFound {
				if !IsNotFound(err) {
					t.Fatalf("GetKey() = %v, want not found", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID != tt.id || k.Invalidated != tt.wantInvalidated || k.Expiration.IsZero() == tt.wantExpiry {
				t.Fatalf("GetKey() = %+v", k)
			}
		})
	}
}
