package esim

import (
	"testing"
)

// TestClusterStateFileSettings: GET /_cluster/state reports metadata.reserved_state.file_settings
// as ES's ReservedStateMetadata does (version, handlers, errors of a refused version), with the
// forms a client calls (all metrics, the metadata metric, filter_path accepted).
func TestClusterStateFileSettings(t *testing.T) {
	e := newEnv(t, "9.5.0")
	r := e.do("GET", "/_cluster/state/metadata?filter_path=metadata.reserved_state.file_settings", "")
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.raw)
	}
	if rs, ok := jsonPath(r.body, "metadata.reserved_state").(map[string]any); !ok || len(rs) != 0 {
		t.Errorf("no file settings applied: reserved_state = %v, want {}", jsonPath(r.body, "metadata.reserved_state"))
	}
	e.n.SetFileSettings(&FileSettingsState{Version: 1753000000000000001, Handlers: []string{"cluster_secrets"}})
	for _, path := range []string{"/_cluster/state", "/_cluster/state/metadata", "/_cluster/state/_all", "/_cluster/state/metadata,nodes?local=true",
		"/_cluster/state/metadata?filter_path=metadata.reserved_state.file_settings"} {
		r = e.do("GET", path, "")
		if got := jsonPath(r.body, "metadata.reserved_state.file_settings.version"); r.status != 200 || got != float64(1753000000000000001) {
			t.Errorf("%s: %d version %v, want 1753000000000000001 (%s)", path, r.status, got, r.raw)
		}
		if jsonPath(r.body, "metadata.reserved_state.file_settings.errors") != nil {
			t.Errorf("%s: errors reported without errors: %s", path, r.raw)
		}
	}
	if r := e.do("GET", "/_cluster/state/nodes", ""); jsonPath(r.body, "metadata") != nil || jsonPath(r.body, "nodes") == nil {
		t.Errorf("nodes metric: %s, want nodes without metadata", r.raw)
	}
	e.n.SetFileSettings(&FileSettingsState{Version: 5, Handlers: []string{"cluster_secrets"},
		Errors: &FileSettingsErrors{Version: 6, ErrorKind: "parsing", Errors: []string{"bad"}}})
	r = e.do("GET", "/_cluster/state/metadata", "")
	if jsonPath(r.body, "metadata.reserved_state.file_settings.version") != float64(5) ||
		jsonPath(r.body, "metadata.reserved_state.file_settings.errors.version") != float64(6) ||
		jsonPath(r.body, "metadata.reserved_state.file_settings.errors.error_kind") != "parsing" {
		t.Errorf("errors: %s", r.raw)
	}
	runErrCases(t, e, []errCase{
		{name: "unknown metric", method: "GET", path: "/_cluster/state/secrets", status: 400, typ: "illegal_argument_exception",
			reason: "Unknown metric [secrets]"},
		{name: "unknown parameter", method: "GET", path: "/_cluster/state?verbose=true", status: 400, typ: "illegal_argument_exception",
			reason: "request [/_cluster/state] contains unrecognized parameter: [verbose]"},
		{name: "unauthenticated", method: "GET", path: "/_cluster/state", opts: []opt{noAuth()}, status: 401, typ: "security_exception",
			reason: "missing authentication credentials for REST request [/_cluster/state]"},
	})
}
