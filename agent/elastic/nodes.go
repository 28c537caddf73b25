package elastic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// ClusterInfo is what GET / reports.
type ClusterInfo struct {
	// Version is the version number, e.g. "9.3.2".
	Version     string
	ClusterName string
	ClusterUUID string
	NodeName    string
}

// Info returns the cluster's version, name and UUID (GET /).
func (c *Client) Info(ctx context.Context) (*ClusterInfo, error) {
	var res struct {
		Name        string `json:"name"`
		ClusterName string `json:"cluster_name"`
		ClusterUUID string `json:"cluster_uuid"`
		Version     struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	if err := c.call(ctx, c.esapiSender(esapi.InfoRequest{}), &res); err != nil {
		return nil, fmt.Errorf("failed to get cluster info: %w", err)
	}
	if res.Version.Number == "" {
		return nil, errors.New("failed to get cluster info: response has no version number")
	}
	return &ClusterInfo{Version: res.Version.Number, ClusterName: res.ClusterName, ClusterUUID: res.ClusterUUID, NodeName: res.Name}, nil
}

// NodeStartTimes returns each node's JVM start time by node id
// (GET /_nodes/jvm). A changed start time means the node restarted.
func (c *Client) NodeStartTimes(ctx context.Context) (map[string]time.Time, error) {
	var res struct {
		Nodes map[string]struct {
			JVM *struct {
				StartTimeInMillis *int64 `json:"start_time_in_millis"`
			} `json:"jvm"`
		} `json:"nodes"`
	}
	if err := c.call(ctx, c.esapiSender(esapi.NodesInfoRequest{Metric: []string{"jvm"}}), &res); err != nil {
		return nil, fmt.Errorf("failed to get node start times: %w", err)
	}
	out := make(map[string]time.Time, len(res.Nodes))
	for id, n := range res.Nodes {
		if n.JVM == nil || n.JVM.StartTimeInMillis == nil {
			return nil, fmt.Errorf("failed to get node start times: node %s has no jvm.start_time_in_millis", id)
		}
		out[id] = millis(*n.JVM.StartTimeInMillis)
	}
	return out, nil
}

// NodeReload is the outcome of a secure settings reload on one node.
type NodeReload struct {
	ID   string
	Name string
	// Err is the node's reload_exception; nil on success.
	Err *APIError
}

// ReloadSecureSettings asks every node to reload its keystore
// (POST /_nodes/reload_secure_settings). Elasticsearch answers 200 even when
// nodes fail; the result lists every node and the error names each failure.
func (c *Client) ReloadSecureSettings(ctx context.Context) ([]NodeReload, error) {
	var res struct {
		NodeStats *struct {
			Failed   int          `json:"failed"`
			Failures []errorCause `json:"failures"`
		} `json:"_nodes"`
		Nodes map[string]struct {
			Name            string      `json:"name"`
			ReloadException *errorCause `json:"reload_exception"`
		} `json:"nodes"`
	}
	if err := c.call(ctx, c.esapiSender(esapi.NodesReloadSecureSettingsRequest{}), &res); err != nil {
		return nil, fmt.Errorf("failed to reload secure settings: %w", err)
	}
	var (
		out    []NodeReload
		failed multiError
	)
	for id, n := range res.Nodes {
		nr := NodeReload{ID: id, Name: n.Name}
		if n.ReloadException != nil {
			nr.Err = n.ReloadException.toAPIError()
			failed = append(failed, fmt.Errorf("node %s: %w", nodeLabel(nr), nr.Err))
			c.log.Warn("secure settings reload failed on node", logKeyNode, nodeLabel(nr), logKeyError, nr.Err)
		}
		out = append(out, nr)
	}
	if res.NodeStats != nil {
		for _, f := range res.NodeStats.Failures {
			failed = append(failed, f.toAPIError())
		}
		if res.NodeStats.Failed > 0 && len(failed) == 0 {
			failed = append(failed, fmt.Errorf("%d nodes failed", res.NodeStats.Failed))
		}
	}
	slices.SortFunc(out, func(a, b NodeReload) int { return strings.Compare(a.ID, b.ID) })
	if len(failed) > 0 {
		slices.SortFunc(failed, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return out, fmt.Errorf("failed to reload secure settings: %w", failed)
	}
	return out, nil
}

func nodeLabel(n NodeReload) string {
	if n.Name != "" {
		return n.Name
	}
	return n.ID
}
