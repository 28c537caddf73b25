package elastic

import (
	"context"
	"fmt"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/ecklink/ecklink/internal/peertext"
)

// FileSettings is what Elasticsearch reports of its file-based settings
// (GET /_cluster/state metadata.reserved_state.file_settings).
type FileSettings struct {
	// Applied is false when the cluster state has no file_settings namespace yet.
	Applied bool
	// Version is the metadata.version of the last settings.json applied.
	Version int64
	// ErrorVersion and Errors describe the last version Elasticsearch refused (ErrorKind
	// "parsing", "validation" or "transient"), if any.
	ErrorVersion int64
	ErrorKind    string
	Errors       []string
}

// maxFileSettingsErrors bounds the errors kept of a response.
const maxFileSettingsErrors = 8

// FileSettings reads which version of the file-based settings Elasticsearch applied
// (GET /_cluster/state/metadata?filter_path=metadata.reserved_state.file_settings; action
// cluster:monitor/state, granted by monitor).
func (c *Client) FileSettings(ctx context.Context) (*FileSettings, error) {
	var res struct {
		Metadata *struct {
			ReservedState map[string]*struct {
				Version *int64 `json:"version"`
				Errors  *struct {
					Version   int64    `json:"version"`
					ErrorKind string   `json:"error_kind"`
					Errors    []string `json:"errors"`
				} `json:"errors"`
			} `json:"reserved_state"`
		} `json:"metadata"`
	}
	send := c.esapiSender(esapi.ClusterStateRequest{Metric: []string{"metadata"}, FilterPath: []string{"metadata.reserved_state.file_settings"}})
	if err := c.call(ctx, send, &res); err != nil {
		return nil, fmt.Errorf("failed to read the file settings state: %w", err)
	}
	out := &FileSettings{}
	if res.Metadata == nil {
		// filter_path leaves out metadata when nothing matched: never applied.
		return out, nil
	}
	fs := res.Metadata.ReservedState["file_settings"]
	if fs == nil {
		return out, nil
	}
	if fs.Version != nil {
		out.Applied, out.Version = true, *fs.Version
	}
	if e := fs.Errors; e != nil {
		out.ErrorVersion, out.ErrorKind = e.Version, peertext.Clean(e.ErrorKind, 64)
		for i, s := range e.Errors {
			if i == maxFileSettingsErrors {
				break
			}
			out.Errors = append(out.Errors, peertext.Clean(s, 512))
		}
	}
	return out, nil
}
