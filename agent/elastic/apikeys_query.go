package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// maxKeyPages bounds ListKeys against a server that ignores search_after.
const maxKeyPages = 10000

// esKey is an API key in a query response.
type esKey struct {
	ID                  string          `json:"id"`
	Name                string          `json:"name"`
	Type                string          `json:"type"`
	Creation            int64           `json:"creation"`
	Expiration          *int64          `json:"expiration"`
	Invalidated         bool            `json:"invalidated"`
	Username            string          `json:"username"`
	Realm               string          `json:"realm"`
	Metadata            map[string]any  `json:"metadata"`
	Access              *esAccess       `json:"access"`
	CertificateIdentity *string         `json:"certificate_identity"`
	Sort                json.RawMessage `json:"_sort"`
}

func (e *esKey) toKey() (Key, error) {
	k := Key{
		ID: e.ID, Name: e.Name, Type: e.Type, Creation: millis(e.Creation),
		Invalidated: e.Invalidated, Metadata: e.Metadata, CertificateIdentity: e.CertificateIdentity,
		Owner: e.Username, OwnerRealm: e.Realm,
	}
	if e.Expiration != nil {
		k.Expiration = millis(*e.Expiration)
	}
	if e.Access != nil {
		a, err := e.Access.toAccess()
		if err != nil {
			return Key{}, fmt.Errorf("key %s: %w", e.ID, err)
		}
		k.Access = &a
	}
	return k, nil
}

// keyQueryBody builds the query of q. Sorting by creation then _doc gives
// search_after a total order even for keys created in the same millisecond.
func keyQueryBody(q KeyQuery, size int, after json.RawMessage) map[string]any {
	var filters []any
	if q.NamePrefix != "" {
		filters = append(filters, map[string]any{"prefix": map[string]any{"name": q.NamePrefix}})
	}
	keys := make([]string, 0, len(q.Metadata))
	for k := range q.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		filters = append(filters, map[string]any{"term": map[string]any{"metadata." + k: q.Metadata[k]}})
	}
	if q.ActiveOnly {
		// Expiry is judged by the server's clock ("now"), as ES's own
		// active_only does.
		filters = append(filters,
			map[string]any{"term": map[string]any{"invalidated": false}},
			map[string]any{"bool": map[string]any{
				"should": []any{
					map[string]any{"range": map[string]any{"expiration": map[string]any{"gt": "now"}}},
					map[string]any{"bool": map[string]any{"must_not": []any{map[string]any{"exists": map[string]any{"field": "expiration"}}}}},
				},
				"minimum_should_match": 1,
			}})
	}
	body := map[string]any{
		"size": size,
		"sort": []any{
			map[string]any{"creation": map[string]any{"order": "asc"}},
			map[string]any{"_doc": map[string]any{"order": "asc"}},
		},
	}
	if len(filters) > 0 {
		body["query"] = map[string]any{"bool": map[string]any{"filter": filters}}
	}
	if len(after) > 0 {
		body["search_after"] = after
	}
	return body
}

// ListKeys returns the API keys matching q, oldest first
// (POST /_security/_query/api_key, paged with search_after).
func (c *Client) ListKeys(ctx context.Context, q KeyQuery) ([]Key, error) {
	var (
		out   []Key
		seen  = map[string]bool{}
		after json.RawMessage
	)
	for page := 0; ; page++ {
		if page == maxKeyPages {
			return nil, fmt.Errorf("failed to list API keys: more than %d pages", maxKeyPages)
		}
		r, err := jsonBody(keyQueryBody(q, c.pageSize, after))
		if err != nil {
			return nil, fmt.Errorf("failed to list API keys: %w", err)
		}
		var res struct {
			APIKeys []esKey `json:"api_keys"`
		}
		send := c.esapiSender(esapi.SecurityQueryAPIKeysRequest{Body: r})
		if err := c.call(ctx, send, &res); err != nil {
			return nil, fmt.Errorf("failed to list API keys: %w", err)
		}
		for i := range res.APIKeys {
			e := &res.APIKeys[i]
			if seen[e.ID] { // _doc may shift between pages when segments merge
				continue
			}
			seen[e.ID] = true
			k, err := e.toKey()
			if err != nil {
				return nil, fmt.Errorf("failed to list API keys: %w", err)
			}
			out = append(out, k)
		}
		if len(res.APIKeys) < c.pageSize {
			return out, nil
		}
		last := res.APIKeys[len(res.APIKeys)-1].Sort
		if len(last) == 0 {
			return nil, fmt.Errorf("failed to list API keys: response has no _sort values to page with")
		}
		if bytes.Equal(last, after) {
			return nil, fmt.Errorf("failed to list API keys: paging did not advance")
		}
		after = last
	}
}
