package ecklink_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ecklink/ecklink/agent/metrics"
)

// targetLabels are the labels Prometheus (the ServiceMonitor's scrape) adds to every series of
// the agent: queries may use them besides the agent's own.
var targetLabels = []string{"namespace", "pod", "job", "instance", "service", "endpoint", "container"}

// exported returns every metric family the agent exports, with its label names, from the
// agent's own registry: each collector is given a value through the methods the agent calls.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	m := metrics.New()
	m.BuildInfo("1.2.3", "abc")
	m.AgentCAs(func() []metrics.AgentCA { return []metrics.AgentCA{{Role: "active", NotAfter: time.Now()}} })
	m.PeerUp("west", true)
	m.PeerHeartbeat("west", time.Now())
	m.Propagation(time.Second)
	m.Nack("west", "sent", "InvalidCA")
	m.Link("apps", "ccs", "west-logs", true, time.Now(), time.Now())
	m.Probe("apps", "ccs", "west-logs", true, time.Millisecond)
	m.ReconcileError("importer")
	m.Leader(true)
	m.PortRefused("handshake")
	m.PairingRefused("no_token")
	m.PeerLag("west", "data", "logs", 0)
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		names := slices.Sorted(maps.Keys(labels))
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[mf.GetName()+"_bucket"] = append(slices.Clone(names), "le")
			out[mf.GetName()+"_sum"], out[mf.GetName()+"_count"] = names, names
		case dto.MetricType_SUMMARY:
			out[mf.GetName()] = append(slices.Clone(names), "quantile")
			out[mf.GetName()+"_sum"], out[mf.GetName()+"_count"] = names, names
		default:
			out[mf.GetName()] = names
		}
	}
	return out
}

// query is a PromQL expression of the chart, with the label names its text refers to
// ({{ $labels.x }} in an alert, {{x}} in a legend).
type query struct {
	where, expr string
	refs        []string
}

// grafanaVars stand in for Grafana's variables, so the parser sees plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "${namespace}", "ecklink", "$namespace", "ecklink")

var (
	alertLabelRef  = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	legendLabelRef = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	labelValues    = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
)

// chartQueries renders the chart with the alerts and the dashboard on and returns every query.
func chartQueries(t *testing.T) []query {
	t.Helper()
	out, err := newHelm(t).template("--set", "environment=west", "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	var qs []query
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	found := map[string]bool{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch doc["kind"] {
		case "PrometheusRule":
			found["rule"] = true
			qs = append(qs, ruleQueries(t, doc)...)
		case "ConfigMap":
			data, _ := doc["data"].(map[string]any)
			if js, ok := data["ecklink.json"].(string); ok {
				found["dashboard"] = true
				qs = append(qs, dashboardQueries(t, []byte(js))...)
			}
		}
	}
	if !found["rule"] || !found["dashboard"] {
		t.Fatalf("the rendering lacks the PrometheusRule or the dashboard ConfigMap: %v", found)
	}
	return qs
}

func ruleQueries(t *testing.T, doc map[string]any) []query {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &rule); err != nil {
		t.Fatal(err)
	}
	var qs []query
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			q := query{where: "alert " + r.Alert, expr: r.Expr}
			for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
				for _, m := range alertLabelRef.FindAllStringSubmatch(r.Annotations[k], -1) {
					q.refs = append(q.refs, m[1])
				}
			}
			if !strings.HasPrefix(r.Annotations["runbook_url"], "https://") || !strings.HasSuffix(r.Annotations["runbook_url"], "README.md#"+strings.ToLower(r.Alert)) {
				t.Errorf("alert %s: runbook_url %q does not point at its README section", r.Alert, r.Annotations["runbook_url"])
			}
			if !bytes.Contains(readme, []byte("\n#### "+r.Alert+"\n")) {
				t.Errorf("alert %s has no runbook section (#### %s) in README.md", r.Alert, r.Alert)
			}
			qs = append(qs, q)
		}
	}
	return qs
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

func dashboardQueries(t *testing.T, js []byte) []query {
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(js, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				q := query{where: "panel " + p.Title, expr: tg.Expr}
				for _, m := range legendLabelRef.FindAllStringSubmatch(tg.LegendFormat, -1) {
					q.refs = append(q.refs, m[1])
				}
				qs = append(qs, q)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		qv, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		s, _ := qv["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, s)
			continue
		}
		qs = append(qs, query{where: "variable " + v.Name, expr: m[1], refs: []string{m[2]}})
	}
	return qs
}

// TestQueriesUseExportedMetrics: every PromQL expression of the chart's alerts and dashboard
// parses, selects only metrics the agent exports, and names only their labels (or the target
// labels Prometheus adds) in matchers, by/without, on/ignoring, legends and alert annotations.
func TestQueriesUseExportedMetrics(t *testing.T) {
	known := exported(t)
	qs := chartQueries(t)
	if len(qs) < 15 {
		t.Fatalf("only %d queries found in the alerts and the dashboard", len(qs))
	}
	anyLabel := map[string]bool{}
	for _, ls := range known {
		for _, l := range ls {
			anyLabel[l] = true
		}
	}
	for _, l := range targetLabels {
		anyLabel[l] = true
	}
	for _, q := range qs {
		expr, err := parser.ParseExpr(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
			continue
		}
		selected := map[string]bool{}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.VectorSelector:
				labels, ok := known[n.Name]
				if !ok {
					t.Errorf("%s: metric %q is not exported by the agent", q.where, n.Name)
					return nil
				}
				selected[n.Name] = true
				for _, m := range n.LabelMatchers {
					if m.Name != "__name__" && !slices.Contains(labels, m.Name) && !slices.Contains(targetLabels, m.Name) {
						t.Errorf("%s: %s has no label %q (it has %v)", q.where, n.Name, m.Name, labels)
					}
				}
			case *parser.AggregateExpr:
				for _, l := range n.Grouping {
					if !anyLabel[l] {
						t.Errorf("%s: grouping by unknown label %q", q.where, l)
					}
				}
			case *parser.BinaryExpr:
				if vm := n.VectorMatching; vm != nil {
					for _, l := range append(slices.Clone(vm.MatchingLabels), vm.Include...) {
						if !anyLabel[l] {
							t.Errorf("%s: matching on unknown label %q", q.where, l)
						}
					}
				}
			}
			return nil
		})
		if len(selected) == 0 {
			t.Errorf("%s: %q selects no metric", q.where, q.expr)
		}
		for _, ref := range q.refs {
			ok := slices.Contains(targetLabels, ref)
			for name := range selected {
				ok = ok || slices.Contains(known[name], ref)
			}
			if !ok {
				t.Errorf("%s: refers to label %q, which none of %v has", q.where, ref, slices.Sorted(maps.Keys(selected)))
			}
		}
	}
}

// TestReadmeListsMetrics: the README's operations section names exactly the ecklink metrics
// the agent exports.
func TestReadmeListsMetrics(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(readme, []byte("## Operations"))
	if start < 0 {
		t.Fatal("README has no Operations section")
	}
	section := readme[start:]
	if end := bytes.Index(section[3:], []byte("\n## ")); end > 0 {
		section = section[:end+3]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`(ecklink_[a-z_]*[a-z])`").FindAllSubmatch(section, -1) {
		listed[string(m[1])] = true
	}
	want := map[string]bool{}
	for name := range exported(t) {
		if strings.HasPrefix(name, "ecklink_") {
			want[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
		}
	}
	for name := range want {
		if !listed[name] {
			t.Errorf("README's Operations section does not list %s", name)
		}
	}
	for name := range listed {
		if !want[name] {
			t.Errorf("README's Operations section lists %s, which the agent does not export", name)
		}
	}
}
