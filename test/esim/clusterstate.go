package esim

import (
	"slices"
	"strings"
)

// FileSettingsErrors is what ES reports in reserved_state.file_settings.errors when it could
// not apply a version of the file-based settings (ReservedStateErrorMetadata).
type FileSettingsErrors struct {
	Version   int64
	ErrorKind string // "parsing", "validation" or "transient"
	Errors    []string
}

// FileSettingsState is the file-based settings state the cluster state holds
// (metadata.reserved_state.file_settings, ReservedStateMetadata): the last version applied, the
// handlers that applied it and the error of a later version that failed, if any.
type FileSettingsState struct {
	Version  int64
	Handlers []string // handler names, e.g. "cluster_secrets", "cluster_settings"
	Errors   *FileSettingsErrors
}

// SetFileSettings sets what GET /_cluster/state reports in metadata.reserved_state.file_settings
// (nil: the node never applied file-based settings, the namespace is absent).
func (n *Node) SetFileSettings(fs *FileSettingsState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if fs == nil {
		n.fileSettings = nil
		return
	}
	c := *fs
	c.Handlers = slices.Clone(fs.Handlers)
	if fs.Errors != nil {
		e := *fs.Errors
		e.Errors = slices.Clone(fs.Errors.Errors)
		c.Errors = &e
	}
	n.fileSettings = &c
}

// FileSettings returns what SetFileSettings last set (nil when none).
func (n *Node) FileSettings() *FileSettingsState {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fileSettings == nil {
		return nil
	}
	c := *n.fileSettings
	return &c
}

var clusterStateParams = []string{"local", "master_timeout", "flat_settings", "wait_for_metadata_version",
	"wait_for_timeout", "allow_no_indices", "expand_wildcards", "ignore_unavailable"}

// clusterStateMetrics are the metrics of GET /_cluster/state/{metric} (ClusterState.Metric).
var clusterStateMetrics = []string{"version", "master_node", "blocks", "nodes", "metadata", "routing_table", "routing_nodes", "customs"}

// clusterState is GET /_cluster/state[/{metric}[/{index}]]. The node is a one-node cluster
// without indices; only what callers read is modelled: cluster_name, cluster_uuid, version,
// master_node, nodes and metadata (cluster_uuid and reserved_state: file_settings when set).
// filter_path is accepted and ignored, as everywhere in esim.
func (n *Node) clusterState(c *reqCtx) (action, error) {
	want := map[string]bool{}
	if m := c.pathParams["metric"]; m != "" && m != "_all" {
		for _, name := range strings.Split(m, ",") {
			if !slices.Contains(clusterStateMetrics, name) {
				return nil, iae("Unknown metric [%s]", name)
			}
			want[name] = true
		}
	} else {
		for _, name := range clusterStateMetrics {
			want[name] = true
		}
	}
	return func() (*response, error) {
		n.mu.Lock()
		fs := n.fileSettings
		n.mu.Unlock()
		out := obj{{"cluster_name", n.cfg.ClusterName}, {"cluster_uuid", n.cfg.ClusterUUID}}
		if want["version"] {
			out = append(out, Field{"version", 1}, Field{"state_uuid", n.cfg.ClusterUUID})
		}
		if want["master_node"] {
			out = append(out, Field{"master_node", n.nodeID})
		}
		if want["nodes"] {
			out = append(out, Field{"nodes", obj{{n.nodeID, obj{{"name", n.cfg.NodeName}}}}})
		}
		if want["metadata"] {
			reserved := obj{}
			if fs != nil {
				handlers := obj{}
				for _, h := range fs.Handlers {
					handlers = append(handlers, Field{h, obj{{"keys", []string{}}}})
				}
				f := obj{{"version", fs.Version}, {"handlers", handlers}}
				if e := fs.Errors; e != nil {
					f = append(f, Field{"errors", obj{{"version", e.Version}, {"error_kind", e.ErrorKind}, {"errors", e.Errors}}})
				}
				reserved = append(reserved, Field{"file_settings", f})
			}
			out = append(out, Field{"metadata", obj{{"cluster_uuid", n.cfg.ClusterUUID}, {"cluster_uuid_committed", true},
				{"templates", obj{}}, {"indices", obj{}}, {"reserved_state", reserved}}})
		}
		return ok(out)
	}, nil
}
