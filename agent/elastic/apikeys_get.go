package elastic

import (
	"context"
	"fmt"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// GetKey returns one API key by id (GET /_security/api_key?id=), invalidated or expired keys
// included, so that a caller can tell why a key no longer works. An unknown id is an error for
// which IsNotFound is true.
func (c *Client) GetKey(ctx context.Context, id string) (*Key, error) {
	if id == "" {
		return nil, fmt.Errorf("failed to get API key: empty id")
	}
	var res struct {
		APIKeys []esKey `json:"api_keys"`
	}
	if err := c.call(ctx, c.esapiSender(esapi.SecurityGetAPIKeyRequest{ID: id}), &res); err != nil {
		return nil, fmt.Errorf("failed to get API key %s: %w", id, err)
	}
	for i := range res.APIKeys {
		if res.APIKeys[i].ID == id {
			k, err := res.APIKeys[i].toKey()
			if err != nil {
				return nil, fmt.Errorf("failed to get API key %s: %w", id, err)
			}
			return &k, nil
		}
	}
	return nil, fmt.Errorf("failed to get API key %s: %w", id, &APIError{Status: 404, Type: "resource_not_found_exception", Reason: "no API key with this id"})
}
