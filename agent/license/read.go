package license

import (
	"context"

	"github.com/ecklink/ecklink/agent/elastic"
)

// Clients gives an Elasticsearch client for a cluster.
type Clients interface {
	Client(ctx context.Context, t elastic.Target) (*elastic.Client, error)
}

// Of returns the license of Elasticsearch target as GET /_license reports it, through the cache
// (keyed namespace/name); the error is as Get's.
func (c *Cache) Of(ctx context.Context, target elastic.Target, clients Clients) (License, error) {
	return c.Get(ctx, target.Namespace+"/"+target.Name, func(ctx context.Context) (License, error) {
		client, err := clients.Client(ctx, target)
		if err != nil {
			return License{}, err
		}
		l, err := client.License(ctx)
		if err != nil {
			return License{}, err
		}
		return License{Type: l.Type, Status: l.Status}, nil
	})
}
