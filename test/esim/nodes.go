package esim

import (
	"context"
	"strings"
	"time"
)

// mainInfo is GET / and HEAD /.
func (n *Node) mainInfo(*reqCtx) (action, error) {
	return func() (*response, error) {
		v := n.ver
		return ok(obj{
			{"name", n.cfg.NodeName}, {"cluster_name", n.cfg.ClusterName}, {"cluster_uuid", n.cfg.ClusterUUID},
			{"version", obj{
				{"number", v.raw}, {"build_flavor", "default"}, {"build_type", "docker"}, {"build_hash", v.buildHash()},
				{"build_date", "2025-01-01T00:00:00.000000000Z"}, {"build_snapshot", false},
				{"lucene_version", v.luceneVersion()},
				{"minimum_wire_compatibility_version", v.minWireCompat()},
				{"minimum_index_compatibility_version", v.minIndexCompat()},
			}},
			{"tagline", "You Know, for Search"},
		})
	}, nil
}

var healthParams = []string{"index", "wait_for_status", "timeout", "master_timeout", "level", "local",
	"wait_for_nodes", "wait_for_active_shards", "wait_for_no_relocating_shards", "wait_for_no_initializing_shards",
	"wait_for_events", "expand_wildcards", "return_200_for_cluster_health_timeout"}

// clusterHealth is GET /_cluster/health[/{index}]. The node is one green
// node without indices; a wait condition that can never hold waits for the
// timeout (default 30s) and answers 408 with timed_out true.
func (n *Node) clusterHealth(c *reqCtx) (action, error) {
	status := "green"
	if idx := c.pathParams["index"]; idx != "" {
		// [mem] a concrete index that does not exist makes the health RED.
		for _, name := range strings.Split(idx, ",") {
			if name != "_all" && !strings.Contains(name, "*") {
				status = "red"
			}
		}
	}
	satisfiable := true
	if ws, ok := c.params["wait_for_status"]; ok {
		rank := map[string]int{"green": 0, "yellow": 1, "red": 2}
		want, known := rank[strings.ToLower(ws)]
		if !known {
			return nil, iae("No enum constant org.elasticsearch.cluster.health.ClusterHealthStatus.%s", strings.ToUpper(ws))
		}
		if rank[status] > want {
			satisfiable = false
		}
	}
	if wn, ok := c.params["wait_for_nodes"]; ok && wn != "" {
		holds, err := waitForNodes(wn, 1)
		if err != nil {
			return nil, err
		}
		satisfiable = satisfiable && holds
	}
	if wa, ok := c.params["wait_for_active_shards"]; ok && wa != "" && wa != "all" {
		i, ok := javaParseInt(wa)
		if !ok || i < 0 {
			return nil, iae("cannot parse ActiveShardCount[%s]", wa) // [mem]
		}
		satisfiable = satisfiable && i == 0
	}
	if l, ok := c.params["level"]; ok {
		switch strings.ToLower(l) {
		case "cluster", "indices", "shards":
		default:
			return nil, iae("No enum constant org.elasticsearch.action.admin.cluster.health.ClusterHealthRequest.Level.%s", strings.ToUpper(l))
		}
	}
	for _, p := range []string{"local", "wait_for_no_relocating_shards", "wait_for_no_initializing_shards", "return_200_for_cluster_health_timeout"} {
		if _, err := c.boolParam(p, false); err != nil {
			return nil, err
		}
	}
	timeout, hasTimeout, err := c.timeParam("timeout")
	if err != nil {
		return nil, err
	}
	if err := checkTimeParams(c, "master_timeout"); err != nil {
		return nil, err
	}
	if !hasTimeout {
		timeout = timeValue{30, time.Second}
	}
	withIndices := c.params["level"] == "indices" || c.params["level"] == "shards"
	return func() (*response, error) {
		code := 200
		if !satisfiable {
			wait(c.r.Context(), timeout.duration())
			code = 408
		}
		return &response{status: code, body: n.healthBody(status, !satisfiable, withIndices)}, nil
	}, nil
}

func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// waitForNodes evaluates ">=N", "<=N", ">N", "<N", "ge(N)", "le(N)", "gt(N)", "lt(N)" or "N".
func waitForNodes(expr string, nodes int64) (bool, *Error) {
	num := func(s string) (int64, *Error) {
		v, ok := javaParseInt(s)
		if !ok {
			return 0, numberFormatErr(s)
		}
		return v, nil
	}
	type op struct {
		prefix, suffix string
		f              func(a, b int64) bool
	}
	ops := []op{
		{">=", "", func(a, b int64) bool { return a >= b }}, {"<=", "", func(a, b int64) bool { return a <= b }},
		{">", "", func(a, b int64) bool { return a > b }}, {"<", "", func(a, b int64) bool { return a < b }},
		{"ge(", ")", func(a, b int64) bool { return a >= b }}, {"le(", ")", func(a, b int64) bool { return a <= b }},
		{"gt(", ")", func(a, b int64) bool { return a > b }}, {"lt(", ")", func(a, b int64) bool { return a < b }},
	}
	for _, o := range ops {
		if strings.HasPrefix(expr, o.prefix) && strings.HasSuffix(expr, o.suffix) && len(expr) >= len(o.prefix)+len(o.suffix) {
			v, err := num(expr[len(o.prefix) : len(expr)-len(o.suffix)])
			if err != nil {
				return false, err
			}
			return o.f(nodes, v), nil
		}
	}
	v, err := num(expr)
	if err != nil {
		return false, err
	}
	return nodes == v, nil
}

func (n *Node) healthBody(status string, timedOut, withIndices bool) obj {
	o := obj{
		{"cluster_name", n.cfg.ClusterName}, {"status", status}, {"timed_out", timedOut},
		{"number_of_nodes", 1}, {"number_of_data_nodes", 1}, {"active_primary_shards", 0}, {"active_shards", 0},
		{"relocating_shards", 0}, {"initializing_shards", 0}, {"unassigned_shards", 0},
	}
	if n.ver.hasUnassignedPrimary() {
		o = append(o, Field{"unassigned_primary_shards", 0})
	}
	o = append(o, Field{"delayed_unassigned_shards", 0}, Field{"number_of_pending_tasks", 0},
		Field{"number_of_in_flight_fetch", 0}, Field{"task_max_waiting_in_queue_millis", 0},
		Field{"active_shards_percent_as_number", 100.0})
	if withIndices {
		o = append(o, Field{"indices", obj{}})
	}
	return o
}

// nodeMatches is the node filter of node-level APIs.
func (n *Node) nodeMatches(filter string) bool {
	for _, f := range strings.Split(filter, ",") {
		switch {
		case f == "_all" || f == "*" || f == "_local" || f == "_master" || f == n.nodeID || f == n.cfg.NodeName:
			return true
		case strings.Contains(f, "*") && (simpleMatch(f, n.nodeID) || simpleMatch(f, n.cfg.NodeName)):
			return true
		}
	}
	return false
}

// reloadSecureSettings is POST /_nodes[/{node_id}]/reload_secure_settings.
func (n *Node) reloadSecureSettings(c *reqCtx) (action, error) {
	if err := checkTimeParams(c, "timeout"); err != nil {
		return nil, err
	}
	var password string
	if len(c.body) > 0 {
		body, err := parseJSON(c.body)
		if err != nil {
			return nil, err
		}
		var pw *string
		op := &objParser{name: "reload_secure_settings", fields: []fieldDecl{{"secure_settings_password", tString, stringField(&pw)}}}
		if err := op.parse(body); err != nil {
			return nil, err
		}
		if pw != nil {
			password = *pw
		}
	}
	filter := c.pathParams["node_id"]
	if filter == "" {
		filter = "_all"
	}
	return func() (*response, error) {
		nodes := obj{}
		if n.nodeMatches(filter) {
			n.mu.Lock()
			fn := n.reload
			n.mu.Unlock()
			entry := obj{{"name", n.cfg.NodeName}}
			if fn != nil {
				if err := fn(password); err != nil {
					n.log.Warn("reload of secure settings failed", "error", err)
					e, isES := err.(*Error)
					if !isES {
						e = newErr(500, "exception", "%s", err.Error())
					}
					entry = append(entry, Field{"reload_exception", e.cause(true)})
				}
			}
			nodes = append(nodes, Field{n.nodeID, entry})
		}
		return ok(obj{{"_nodes", nodeCounts(len(nodes))}, {"cluster_name", n.cfg.ClusterName}, {"nodes", nodes}})
	}, nil
}

func nodeCounts(total int) obj {
	return obj{{"total", total}, {"successful", total}, {"failed", 0}}
}

var nodeInfoMetrics = map[string]bool{"settings": true, "os": true, "process": true, "jvm": true, "thread_pool": true,
	"transport": true, "http": true, "remote_cluster_server": true, "plugins": true, "ingest": true,
	"aggregations": true, "indices": true, "_all": true, "_none": true}

// nodesInfo is GET /_nodes, /_nodes/{node_id_or_metric}, /_nodes/{node_id}/{metric}.
// Only jvm (with start_time_in_millis) and settings carry content.
func (n *Node) nodesInfo(c *reqCtx) (action, error) {
	filter, metrics := "_all", "_all"
	if p, ok := c.pathParams["node_id"]; ok {
		filter = p
		metrics = c.pathParams["metric"]
	} else if p, ok := c.pathParams["nodes_or_metric"]; ok {
		allMetrics := true
		for _, m := range strings.Split(p, ",") {
			allMetrics = allMetrics && nodeInfoMetrics[m]
		}
		if allMetrics && p != "_all" {
			metrics = p
		} else {
			filter = p
		}
	}
	if _, err := c.boolParam("flat_settings", false); err != nil {
		return nil, err
	}
	if err := checkTimeParams(c, "timeout", "master_timeout"); err != nil {
		return nil, err
	}
	var unknown []string
	for _, m := range strings.Split(metrics, ",") {
		if !nodeInfoMetrics[m] {
			unknown = append(unknown, m)
		}
	}
	if len(unknown) > 0 {
		return nil, iae("request [%s] contains unrecognized metric: [%s]", c.path, strings.Join(unknown, ", "))
	}
	want := func(m string) bool {
		return metrics == "_all" || strings.Contains(","+metrics+",", ","+m+",")
	}
	return func() (*response, error) {
		nodes := obj{}
		if n.nodeMatches(filter) {
			n.mu.Lock()
			start := n.startTime
			n.mu.Unlock()
			e := obj{
				{"name", n.cfg.NodeName}, {"transport_address", "127.0.0.1:9300"}, {"host", "127.0.0.1"}, {"ip", "127.0.0.1"},
				{"version", n.ver.raw}, {"build_flavor", "default"}, {"build_type", "docker"}, {"build_hash", n.ver.buildHash()},
				{"roles", []string{"data", "ingest", "master", "remote_cluster_client"}},
				{"attributes", obj{}},
			}
			if want("settings") {
				e = append(e, Field{"settings", obj{{"cluster", obj{{"name", n.cfg.ClusterName}}}, {"node", obj{{"name", n.cfg.NodeName}}}}})
			}
			if want("jvm") {
				e = append(e, Field{"jvm", obj{
					{"pid", 1}, {"version", "21.0.2"}, {"vm_name", "OpenJDK 64-Bit Server VM"}, {"vm_version", "21.0.2+13-58"},
					{"vm_vendor", "Oracle Corporation"}, {"start_time_in_millis", start.UnixMilli()},
				}})
			}
			nodes = append(nodes, Field{n.nodeID, e})
		}
		return ok(obj{{"_nodes", nodeCounts(len(nodes))}, {"cluster_name", n.cfg.ClusterName}, {"nodes", nodes}})
	}, nil
}

// indexStub answers the index-level routes esim knows only by shape: with
// no indices, GET/HEAD/DELETE /{index} are 404 index_not_found_exception.
func (n *Node) indexStub(c *reqCtx) (action, error) {
	idx := c.pathParams["index"]
	return func() (*response, error) {
		e := newErr(404, "index_not_found_exception", "no such index [%s]", idx)
		e.Metadata = []Field{{"resource.type", "index_or_alias"}, {"resource.id", idx}, {"index_uuid", "_na_"}, {"index", idx}}
		if c.method == "HEAD" {
			return &response{status: 404}, nil
		}
		return nil, e
	}, nil
}

// unsupported answers a route ES has but esim does not simulate.
func unsupported(what string) func(*reqCtx) (action, error) {
	return func(*reqCtx) (action, error) {
		return nil, newErr(500, "exception", "esim does not simulate %s", what)
	}
}
