package license

import (
	"context"
	"errors"
	"testing"
	"time"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &Cache{TTL: time.Minute, Retry: 10 * time.Second, Now: func() time.Time { return now }}
	calls := 0
	var next License
	var nextErr error
	read := func(context.Context) (License, error) { calls++; return next, nextErr }
	ctx := context.Background()

	next = License{Enterprise, Active}
	if l, err := c.Get(ctx, "a", read); err != nil || l != next || calls != 1 {
		t.Fatalf("first read: %v %v calls %d", l, err, calls)
	}
	now = now.Add(30 * time.Second)
	next = License{Basic, Active}
	if l, _ := c.Get(ctx, "a", read); l.Type != Enterprise || calls != 1 {
		t.Fatalf("within TTL: %v calls %d", l, calls)
	}
	now = now.Add(31 * time.Second)
	if l, _ := c.Get(ctx, "a", read); l.Type != Basic || calls != 2 {
		t.Fatalf("after TTL: %v calls %d", l, calls)
	}
	// A failed read keeps the known license while it is less than two TTLs old.
	now = now.Add(61 * time.Second)
	nextErr = errors.New("unavailable")
	if l, err := c.Get(ctx, "a", read); err == nil || l.Type != Basic || calls != 3 {
		t.Fatalf("failed read: %v %v calls %d", l, err, calls)
	}
	now = now.Add(2 * time.Minute)
	if l, err := c.Get(ctx, "a", read); err == nil || l.Known() || calls != 4 {
		t.Fatalf("failed read of a stale license: %v %v calls %d", l, err, calls)
	}
	// A failure is retried after Retry, not before.
	if l, err := c.Get(ctx, "a", read); err != nil || l.Known() || calls != 4 {
		t.Fatalf("cached failure: %v %v calls %d", l, err, calls)
	}
	now = now.Add(11 * time.Second)
	nextErr, next = nil, License{"Bad Type", Active}
	if l, err := c.Get(ctx, "a", read); err == nil || l.Known() || calls != 5 {
		t.Fatalf("invalid license: %v %v calls %d", l, err, calls)
	}
	c.Forget("a")
	now = now.Add(time.Second)
	next = License{Trial, Active}
	if l, _ := c.Get(ctx, "a", read); l.Type != Trial || calls != 6 {
		t.Fatalf("after Forget: %v calls %d", l, calls)
	}
}

func TestFromProto(t *testing.T) {
	if l, err := FromProto(nil); err != nil || l.Known() {
		t.Errorf("nil: %v %v", l, err)
	}
	if l, err := FromProto(&peerv1.ElasticsearchLicense{Type: "basic", Status: "active"}); err != nil || l != (License{Basic, Active}) {
		t.Errorf("basic: %v %v", l, err)
	}
	if _, err := FromProto(&peerv1.ElasticsearchLicense{Type: "basic\n", Status: "active"}); err == nil {
		t.Error("a bad type is accepted")
	}
	if (License{}).Proto() != nil {
		t.Error("an unknown license is sent")
	}
}

// TestCacheRereadsInsufficientSoon: a license that does not allow the API-key model is read
// again after Retry, so that an upgrade shows soon; a sufficient one after TTL.
func TestCacheRereadsInsufficientSoon(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &Cache{TTL: time.Minute, Retry: 10 * time.Second, Now: func() time.Time { return now }}
	calls := 0
	next := License{Basic, Active}
	read := func(context.Context) (License, error) { calls++; return next, nil }
	ctx := context.Background()
	_, _ = c.Get(ctx, "a", read)
	now = now.Add(11 * time.Second)
	next = License{Enterprise, Active}
	if l, _ := c.Get(ctx, "a", read); l.Type != Enterprise || calls != 2 {
		t.Fatalf("basic not read again after Retry: %v calls %d", l, calls)
	}
	now = now.Add(11 * time.Second)
	if _, _ = c.Get(ctx, "a", read); calls != 2 {
		t.Fatalf("enterprise read again before TTL: calls %d", calls)
	}
}
