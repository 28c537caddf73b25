package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo registers ecklink_build_info{version,revision,goversion} 1, as Prometheus' own
// build_info gauges do, so dashboards can tell which version each agent runs.
func (m *Metrics) BuildInfo(version, revision string) {
	if m == nil {
		return
	}
	if revision == "" {
		revision = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help:        "Always 1; the labels say which build the agent runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()}})
	g.Set(1)
	m.registry.MustRegister(g)
}

// AgentCA describes one of the agent's own CAs for AgentCAs.
type AgentCA struct {
	// Role is active, next or previous.
	Role     string
	NotAfter time.Time
}

// AgentCAs registers ecklink_agent_ca_expiry_timestamp_seconds{role}, read from cas at each
// scrape: when the agent CA (and the staged next one, and the retiring previous one) expire.
func (m *Metrics) AgentCAs(cas func() []AgentCA) {
	if m == nil {
		return
	}
	m.registry.MustRegister(&caCollector{cas: cas, desc: prometheus.NewDesc(ns+"_agent_ca_expiry_timestamp_seconds",
		"Expiry of the agent's own CAs, by role: active (signs its certificates now), next (announced to peers), previous (retiring).",
		[]string{"role"}, nil)})
}

type caCollector struct {
	cas  func() []AgentCA
	desc *prometheus.Desc
}

func (c *caCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *caCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ca := range c.cas() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(ca.NotAfter.Unix()), ca.Role)
	}
}

// Gatherer is the agent's registry, for tests that check what the agent exports (the chart's
// alerts and dashboard refer only to those metrics).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.registry }
