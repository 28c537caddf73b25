package license

import (
	"context"
	"sync"
	"time"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Cache keeps the license each Elasticsearch reported, so that a reconcile costs at most one
// GET /_license per cluster and TTL: licenses change rarely (a new license, an expiry), and a
// change shows within TTL. A failed read is tried again after Retry, and reads as unknown; so
// is a license that does not allow the API-key model, so that an upgrade shows soon.
type Cache struct {
	// TTL is how long a license read is reused; Retry how long a failure is.
	TTL, Retry time.Duration
	// Now is the clock.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]entry
}

type entry struct {
	lic License
	at  time.Time
	err bool
}

// Reader reads a cluster's license.
type Reader func(ctx context.Context) (License, error)

// Get returns the license of cluster key, read with read when the cached one is stale. The
// error is the failed read's (the license is then unknown); a cached failure returns nil.
func (c *Cache) Get(ctx context.Context, key string, read Reader) (License, error) {
	now := c.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	ttl := c.TTL
	if e.err || !e.lic.allows(Enterprise) {
		ttl = c.Retry
	}
	if ok && now.Sub(e.at) < ttl {
		return e.lic, nil
	}
	lic, err := read(ctx)
	if err == nil {
		err = lic.Validate()
	}
	if err != nil {
		// Keep a known license over a failed read until it is stale twice over: a passing
		// outage must not turn a verdict into unknown and back.
		if ok && !e.err && now.Sub(e.at) < 2*c.TTL {
			return e.lic, err
		}
		lic = License{}
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]entry{}
	}
	c.m[key] = entry{lic: lic, at: now, err: err != nil}
	c.mu.Unlock()
	return lic, err
}

// Forget drops the entry of a cluster that is gone.
func (c *Cache) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// Proto is the license as the stream carries it; nil when unknown.
func (l License) Proto() *peerv1.ElasticsearchLicense {
	if !l.Known() {
		return nil
	}
	return &peerv1.ElasticsearchLicense{Type: l.Type, Status: l.Status}
}

// FromProto reads the license a peer sent: unknown when unset (an agent that predates it),
// an error naming the field when it is not a license.
func FromProto(p *peerv1.ElasticsearchLicense) (License, error) {
	if p == nil {
		return License{}, nil
	}
	l := License{Type: p.GetType(), Status: p.GetStatus()}
	if err := l.Validate(); err != nil {
		return License{}, err
	}
	return l, nil
}

// Peek returns the cached license of cluster key without reading it; unknown when none is
// cached.
func (c *Cache) Peek(key string) License {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key].lic
}
