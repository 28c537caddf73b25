package elastic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Secret is a credential (an encoded API key). It prints, and encodes to
// JSON, as "[redacted]" so that it cannot leak through logs, events or
// status by accident; Value returns the real content.
type Secret string

const redacted = "[redacted]"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String redacts the secret (fmt's %v, %s, %q, %x).
func (s Secret) String() string { return redacted }

// GoString redacts the secret (fmt's %#v).
func (s Secret) GoString() string { return redacted }

// MarshalJSON redacts the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// CreateKeyRequest describes a cross-cluster API key to create.
type CreateKeyRequest struct {
	// Name of the key; need not be unique.
	Name string
	// Access granted by the key. Required.
	Access Access
	// Expiration is the key's lifetime, rounded up to whole seconds; 0
	// means the key never expires.
	Expiration time.Duration
	// Metadata is stored with the key and can be queried (ListKeys). Top
	// level keys must not start with "_".
	Metadata map[string]any
	// CertificateIdentity is a regex on the client certificate subject DN
	// (Elasticsearch 9.3+ strong identity); nil omits it.
	CertificateIdentity *string
}

// CreatedKey is a newly created API key.
type CreatedKey struct {
	ID   string
	Name string
	// Encoded is base64("id:api_key"), the value of the
	// cluster.remote.<alias>.credentials secure setting.
	Encoded Secret
	// Expiration is zero when the key never expires.
	Expiration time.Time
}

// UpdateKeyRequest changes a cross-cluster API key in place; nil fields are
// left unchanged. The encoded key stays the same.
type UpdateKeyRequest struct {
	// Access replaces the key's access.
	Access *Access
	// Metadata replaces the key's metadata; an empty, non-nil map clears it.
	Metadata map[string]any
	// CertificateIdentity: nil leaves it, a pointer to nil clears it (JSON
	// null), a pointer to a string sets it.
	CertificateIdentity **string
}

// KeyQuery selects API keys owned by the caller's user. Zero fields do not
// filter.
type KeyQuery struct {
	// NamePrefix matches keys whose name starts with it.
	NamePrefix string
	// Metadata matches keys whose metadata has all these values (keys may
	// be dotted paths into nested metadata).
	Metadata map[string]string
	// ActiveOnly drops invalidated and expired keys.
	ActiveOnly bool
}

// Key is an API key as Elasticsearch reports it.
type Key struct {
	ID   string
	Name string
	// Type is "cross_cluster" or "rest".
	Type     string
	Creation time.Time
	// Expiration is zero when the key never expires.
	Expiration  time.Time
	Invalidated bool
	// Owner and OwnerRealm are the user (and its realm) who created the key; only that user may
	// update it (ES answers 404 to anyone else).
	Owner, OwnerRealm string
	Metadata          map[string]any
	// Access is set for cross-cluster keys.
	Access              *Access
	CertificateIdentity *string
}

// InvalidateResult lists what InvalidateKeys did. Ids that were unknown or
// already invalidated appear in neither list.
type InvalidateResult struct {
	Invalidated           []string
	PreviouslyInvalidated []string
}

// formatTimeValue renders d as an Elasticsearch TimeValue in whole seconds
// ("120s"), rounded up: ES adds only the seconds of an expiration to the
// creation time, so finer units would be dropped silently.
func formatTimeValue(d time.Duration) string {
	return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
}

func millis(ms int64) time.Time { return time.UnixMilli(ms) }

// CreateCrossClusterKey creates a cross-cluster API key
// (POST /_security/cross_cluster/api_key).
func (c *Client) CreateCrossClusterKey(ctx context.Context, req CreateKeyRequest) (*CreatedKey, error) {
	if req.Expiration < 0 {
		return nil, fmt.Errorf("failed to create cross-cluster API key %q: negative expiration %s", req.Name, req.Expiration)
	}
	body := struct {
		Name                string         `json:"name"`
		Access              Access         `json:"access"`
		Expiration          string         `json:"expiration,omitempty"`
		Metadata            map[string]any `json:"metadata,omitempty"`
		CertificateIdentity *string        `json:"certificate_identity,omitempty"`
	}{Name: req.Name, Access: req.Access, Metadata: req.Metadata, CertificateIdentity: req.CertificateIdentity}
	if req.Expiration > 0 {
		body.Expiration = formatTimeValue(req.Expiration)
	}
	r, err := jsonBody(body)
	if err != nil {
		return nil, fmt.Errorf("failed to create cross-cluster API key %q: %w", req.Name, err)
	}
	var res struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		Expiration *int64 `json:"expiration"`
		Encoded    Secret `json:"encoded"`
	}
	send := c.esapiSender(esapi.SecurityCreateCrossClusterAPIKeyRequest{Body: r})
	defer c.keyWrite()()
	if err := c.call(ctx, send, &res); err != nil {
		return nil, fmt.Errorf("failed to create cross-cluster API key %q: %w", req.Name, err)
	}
	if res.ID == "" || res.Encoded == "" {
		return nil, fmt.Errorf("failed to create cross-cluster API key %q: response has no id or encoded key", req.Name)
	}
	k := &CreatedKey{ID: res.ID, Name: res.Name, Encoded: res.Encoded}
	if res.Expiration != nil {
		k.Expiration = millis(*res.Expiration)
	}
	c.log.Info("created cross-cluster API key", logKeyKeyID, k.ID, logKeyKeyName, k.Name)
	return k, nil
}

// UpdateCrossClusterKey updates a cross-cluster API key in place
// (PUT /_security/cross_cluster/api_key/{id}). It reports whether anything
// changed. An unknown id gives an error for which IsNotFound is true.
func (c *Client) UpdateCrossClusterKey(ctx context.Context, id string, req UpdateKeyRequest) (bool, error) {
	if strings.TrimSpace(id) == "" {
		return false, errors.New("failed to update cross-cluster API key: id is required")
	}
	// A map, not the typed request: the typed one sends "access":{} when
	// access is unset, and cannot send certificate_identity or null.
	body := map[string]any{}
	if req.Access != nil {
		body["access"] = *req.Access
	}
	if req.Metadata != nil {
		body["metadata"] = req.Metadata
	}
	if req.CertificateIdentity != nil {
		body["certificate_identity"] = *req.CertificateIdentity
	}
	if len(body) == 0 {
		return false, fmt.Errorf("failed to update cross-cluster API key %s: nothing to update", id)
	}
	r, err := jsonBody(body)
	if err != nil {
		return false, fmt.Errorf("failed to update cross-cluster API key %s: %w", id, err)
	}
	var res struct {
		Updated bool `json:"updated"`
	}
	send := c.esapiSender(esapi.SecurityUpdateCrossClusterAPIKeyRequest{DocumentID: id, Body: r})
	defer c.keyWrite()()
	if err := c.call(ctx, send, &res); err != nil {
		return false, fmt.Errorf("failed to update cross-cluster API key %s: %w", id, err)
	}
	if res.Updated {
		c.log.Info("updated cross-cluster API key", logKeyKeyID, id)
	}
	return res.Updated, nil
}

// InvalidateKeys invalidates API keys by id (DELETE /_security/api_key).
// Unknown and already invalidated ids are not errors. Per-key failures
// (error_details, e.g. a missing privilege) are returned as an error joining
// one *APIError per failure, together with the partial result.
func (c *Client) InvalidateKeys(ctx context.Context, ids []string) (*InvalidateResult, error) {
	if len(ids) == 0 {
		return &InvalidateResult{}, nil
	}
	for i, id := range ids {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("failed to invalidate API keys: blank id at index %d", i)
		}
	}
	var res struct {
		InvalidatedAPIKeys           []string `json:"invalidated_api_keys"`
		PreviouslyInvalidatedAPIKeys []string `json:"previously_invalidated_api_keys"`
		ErrorCount                   int      `json:"error_count"`
		ErrorDetails                 []struct {
			Type   string  `json:"type"`
			Reason *string `json:"reason"`
		} `json:"error_details"`
	}
	body, err := jsonBody(map[string][]string{"ids": ids})
	if err != nil {
		return nil, fmt.Errorf("failed to invalidate %d API keys: %w", len(ids), err)
	}
	send := c.esapiSender(esapi.SecurityInvalidateAPIKeyRequest{Body: body})
	defer c.keyWrite()()
	if err := c.call(ctx, send, &res); err != nil {
		return nil, fmt.Errorf("failed to invalidate %d API keys: %w", len(ids), err)
	}
	out := &InvalidateResult{Invalidated: res.InvalidatedAPIKeys, PreviouslyInvalidated: res.PreviouslyInvalidatedAPIKeys}
	if len(out.Invalidated) > 0 {
		c.log.Info("invalidated API keys", logKeyCount, len(out.Invalidated), logKeyKeyID, strings.Join(out.Invalidated, ","))
	}
	if res.ErrorCount == 0 && len(res.ErrorDetails) == 0 {
		return out, nil
	}
	errs := make(multiError, 0, len(res.ErrorDetails))
	for _, d := range res.ErrorDetails {
		ae := &APIError{Type: d.Type}
		if d.Reason != nil {
			ae.Reason = *d.Reason
		}
		errs = append(errs, ae)
	}
	if len(errs) == 0 {
		errs = append(errs, &APIError{Reason: "error_count is set without error_details"})
	}
	n := max(res.ErrorCount, len(res.ErrorDetails))
	return out, fmt.Errorf("failed to invalidate %d of %d API keys: %w", n, len(ids), errs)
}
