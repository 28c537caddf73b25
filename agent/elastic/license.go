package elastic

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// License is what GET /_license reports (license.type and license.status; the rest, including
// the signature, is not read).
type License struct {
	Type   string
	Status string
}

// License returns the cluster's license (GET /_license; cluster privilege monitor).
func (c *Client) License(ctx context.Context) (*License, error) {
	var res struct {
		License *struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"license"`
	}
	if err := c.call(ctx, c.esapiSender(esapi.LicenseGetRequest{}), &res); err != nil {
		return nil, fmt.Errorf("failed to get the license: %w", err)
	}
	if res.License == nil || res.License.Type == "" {
		// Elasticsearch answers {} when no license is installed (operation mode MISSING).
		return nil, errors.New("failed to get the license: the cluster reports none")
	}
	return &License{Type: strings.ToLower(res.License.Type), Status: strings.ToLower(res.License.Status)}, nil
}
