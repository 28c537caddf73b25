package esim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClusterHealth(t *testing.T) {
	e := newEnv(t, "8.14.3")
	ok := []string{"", "?wait_for_status=green&timeout=1s", "?wait_for_status=yellow", "?wait_for_nodes=1", "?wait_for_nodes=>=1",
		"?wait_for_nodes=ge(1)", "?wait_for_active_shards=all", "?level=indices", "?wait_for_no_relocating_shards=true"}
	for _, q := range ok {
		t.Run("ok"+q, func(t *testing.T) {
			r := e.do("GET", "/_cluster/health"+q, "")
			if r.status != 200 || r.body["status"] != "green" || r.body["timed_out"] != false || r.body["number_of_nodes"] != float64(1) {
				t.Errorf("got %d %s", r.status, r.raw)
			}
		})
	}
	t.Run("field order", func(t *testing.T) {
		r := e.do("GET", "/_cluster/health", "")
		want := `{"cluster_name":"c1","status":"green","timed_out":false,"number_of_nodes":1,"number_of_data_nodes":1,"active_primary_shards":0,` +
			`"active_shards":0,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":0,"delayed_unassigned_shards":0,` +
			`"number_of_pending_tasks":0,"number_of_in_flight_fetch":0,"task_max_waiting_in_queue_millis":0,"active_shards_percent_as_number":100.0}`
		if string(r.raw) != want {
			t.Errorf("got %s", r.raw)
		}
	})
	t.Run("unsatisfiable wait times out with 408", func(t *testing.T) {
		start := time.Now()
		r := e.do("GET", "/_cluster/health?wait_for_nodes=2&timeout=20ms", "")
		if r.status != 408 || r.body["timed_out"] != true || r.body["status"] != "green" {
			t.Errorf("got %d %s", r.status, r.raw)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Error("did not wait for the timeout")
		}
	})
	t.Run("missing index is red", func(t *testing.T) {
		r := e.do("GET", "/_cluster/health/nope?wait_for_status=yellow&timeout=1ms", "")
		if r.status != 408 || r.body["status"] != "red" {
			t.Errorf("got %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/_cluster/health/logs-*", ""); r.status != 200 || r.body["status"] != "green" {
			t.Errorf("wildcard: %d %s", r.status, r.raw)
		}
	})
	runErrCases(t, e, []errCase{
		{name: "bad status", method: "GET", path: "/_cluster/health?wait_for_status=blue", status: 400, typ: "illegal_argument_exception",
			reason: "No enum constant org.elasticsearch.cluster.health.ClusterHealthStatus.BLUE"},
		{name: "bad wait_for_nodes", method: "GET", path: "/_cluster/health?wait_for_nodes=>=x", status: 400, typ: "number_format_exception",
			reason: `For input string: "x"`},
		{name: "bad timeout", method: "GET", path: "/_cluster/health?timeout=10", status: 400, typ: "illegal_argument_exception",
			reason: "failed to parse setting [timeout] with value [10] as a time value: unit is missing or unrecognized"},
		{name: "bad level", method: "GET", path: "/_cluster/health?level=nodes", status: 400, typ: "illegal_argument_exception",
			reason: "No enum constant org.elasticsearch.action.admin.cluster.health.ClusterHealthRequest.Level.NODES"},
		{name: "unauthenticated", method: "GET", path: "/_cluster/health", opts: []opt{noAuth()}, status: 401, typ: "security_exception",
			reason: "missing authentication credentials for REST request [/_cluster/health]"},
	})
}

func TestNodesInfo(t *testing.T) {
	e := newEnv(t, "8.14.3")
	start := time.UnixMilli(1700000000123)
	e.n.SetStartTime(start)
	id := e.n.NodeID()
	for _, p := range []string{"/_nodes", "/_nodes/jvm", "/_nodes/_local/jvm", "/_nodes/" + id, "/_nodes/node-0/jvm,settings"} {
		t.Run(p, func(t *testing.T) {
			r := e.do("GET", p, "")
			if r.status != 200 || jsonPath(r.body, "nodes."+id+".jvm.start_time_in_millis") != float64(start.UnixMilli()) ||
				jsonPath(r.body, "_nodes.total") != float64(1) || r.body["cluster_name"] != "c1" {
				t.Errorf("got %d %s", r.status, r.raw)
			}
		})
	}
	t.Run("metric filter", func(t *testing.T) {
		r := e.do("GET", "/_nodes/settings", "")
		if jsonPath(r.body, "nodes."+id+".jvm") != nil || jsonPath(r.body, "nodes."+id+".settings.cluster.name") != "c1" {
			t.Errorf("got %s", r.raw)
		}
	})
	t.Run("no matching node", func(t *testing.T) {
		r := e.do("GET", "/_nodes/other-node", "")
		if string(r.raw) != `{"_nodes":{"total":0,"successful":0,"failed":0},"cluster_name":"c1","nodes":{}}` {
			t.Errorf("got %s", r.raw)
		}
	})
	runErrCases(t, e, []errCase{
		{name: "unknown metric", method: "GET", path: "/_nodes/_all/foo", status: 400, typ: "illegal_argument_exception",
			reason: "request [/_nodes/_all/foo] contains unrecognized metric: [foo]"},
	})
}

func TestReloadSecureSettings(t *testing.T) {
	e := newEnv(t, "8.14.3")
	id := e.n.NodeID()
	var gotPassword string
	calls := 0
	e.n.SetReloadFunc(func(pw string) error {
		calls++
		gotPassword = pw
		return nil
	})
	r := e.do("POST", "/_nodes/reload_secure_settings", `{"secure_settings_password":"ks-pass"}`)
	want := `{"_nodes":{"total":1,"successful":1,"failed":0},"cluster_name":"c1","nodes":{"` + id + `":{"name":"node-0"}}}`
	if r.status != 200 || string(r.raw) != want || gotPassword != "ks-pass" || calls != 1 {
		t.Fatalf("got %d %s (calls %d)", r.status, r.raw, calls)
	}
	t.Run("node filter", func(t *testing.T) {
		if r := e.do("POST", "/_nodes/"+id+"/reload_secure_settings", ""); string(r.raw) != want || gotPassword != "" {
			t.Errorf("by id: %s", r.raw)
		}
		r := e.do("POST", "/_nodes/nope/reload_secure_settings", "")
		if jsonPath(r.body, "_nodes.total") != float64(0) || calls != 2 {
			t.Errorf("no match: %s calls %d", r.raw, calls)
		}
	})
	t.Run("failure is a 200 with reload_exception", func(t *testing.T) {
		e.n.SetReloadFunc(func(string) error {
			return &Error{Type: "security_exception", Reason: "Provided keystore password was incorrect", Status: 401}
		})
		r := e.do("POST", "/_nodes/reload_secure_settings", `{"secure_settings_password":"bad"}`)
		if r.status != 200 || jsonPath(r.body, "nodes."+id+".reload_exception.type") != "security_exception" ||
			jsonPath(r.body, "nodes."+id+".reload_exception.reason") != "Provided keystore password was incorrect" ||
			jsonPath(r.body, "_nodes.failed") != float64(0) {
			t.Errorf("got %d %s", r.status, r.raw)
		}
		e.n.SetReloadFunc(func(string) error { return errors.New("boom") })
		r = e.do("POST", "/_nodes/reload_secure_settings", "")
		if jsonPath(r.body, "nodes."+id+".reload_exception.type") != "exception" {
			t.Errorf("plain error: %s", r.raw)
		}
	})
	runErrCases(t, e, []errCase{
		{name: "unknown field", method: "POST", path: "/_nodes/reload_secure_settings", body: `{"password":"x"}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:2] [reload_secure_settings] unknown field [password]"},
		{name: "bad JSON", method: "POST", path: "/_nodes/reload_secure_settings", body: `{"secure_settings_password":}`, status: 400,
			typ: "x_content_parse_exception", reason: "[1:30] Unexpected character ('}' (code 125)): expected a value"},
		{name: "bad timeout", method: "POST", path: "/_nodes/reload_secure_settings?timeout=x", status: 400, typ: "illegal_argument_exception",
			reason: "failed to parse setting [timeout] with value [x] as a time value: unit is missing or unrecognized"},
	})
	if r := e.do("GET", "/_nodes/reload_secure_settings", ""); r.status != 200 || !strings.Contains(string(r.raw), `"nodes":{}`) {
		t.Errorf("GET /_nodes/reload_secure_settings is a node filter: %d %s", r.status, r.raw)
	}
}
