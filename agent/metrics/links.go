package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// linkCollector holds the per-link gauges (link_connected, link_ca_expiry_timestamp_seconds,
// link_api_key_expiry_timestamp_seconds, link_probe_success, link_probe_duration_seconds) as
// plain values per link and makes the series when scraped. Five GaugeVecs kept a child with its
// own label pairs per series: ~3 MB of live heap at 1,000 links, most of an idle agent's
// metrics; the values alone are ~100 bytes a link.
type linkCollector struct {
	connected, caExpiry, keyExpiry, probeSuccess, probeDuration *prometheus.Desc

	mu    sync.Mutex
	links map[linkKey]*linkValues
}

// linkKey names a link on the local side (linkLabels).
type linkKey struct{ ns, es, alias string }

// linkValues are a link's gauges; a has* false means the series is absent.
type linkValues struct {
	connected, caExpiry, keyExpiry, probeSuccess, probeDuration float64
	hasLink, hasCA, hasKey, hasProbe                            bool
}

func newLinkCollector() *linkCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, linkLabels, nil)
	}
	return &linkCollector{
		connected: desc("link_connected", "1 when GET /_remote/info reports the link's alias connected."),
		caExpiry:  desc("link_ca_expiry_timestamp_seconds", "Expiry of the newest remote CA applied for a link (local side)."),
		keyExpiry: desc("link_api_key_expiry_timestamp_seconds", "Expiry of the API key in effect for a link (local side); absent for keys that never expire."),
		probeSuccess: desc("link_probe_success",
			"1 when the agent's last TLS handshake with the link's proxy address, as Elasticsearch makes it (server name, CA ConfigMap), succeeded."),
		probeDuration: desc("link_probe_duration_seconds", "Duration of the agent's last probe of the link (TCP connect and TLS handshake)."),
		links:         map[linkKey]*linkValues{},
	}
}

func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.caExpiry, c.keyExpiry, c.probeSuccess, c.probeDuration} {
		ch <- d
	}
}

func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.links {
		emit := func(d *prometheus.Desc, value float64, has bool) {
			if has {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, value, k.ns, k.es, k.alias)
			}
		}
		emit(c.connected, v.connected, v.hasLink)
		emit(c.caExpiry, v.caExpiry, v.hasCA)
		emit(c.keyExpiry, v.keyExpiry, v.hasKey)
		emit(c.probeSuccess, v.probeSuccess, v.hasProbe)
		emit(c.probeDuration, v.probeDuration, v.hasProbe)
	}
}

// update changes a link's values under the lock and drops the link once it has no series.
func (c *linkCollector) update(k linkKey, change func(v *linkValues)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.links[k]
	if v == nil {
		v = &linkValues{}
	}
	change(v)
	if !v.hasLink && !v.hasCA && !v.hasKey && !v.hasProbe {
		delete(c.links, k)
		return
	}
	c.links[k] = v
}

// Link records a link's state on the local side. A zero caExpiry keeps the CA expiry last
// recorded; a zero keyExpiry (a key that never expires, or none) drops the key expiry series.
func (m *Metrics) Link(ns, es, alias string, connected bool, caExpiry, keyExpiry time.Time) {
	if m == nil {
		return
	}
	m.links.update(linkKey{ns, es, alias}, func(v *linkValues) {
		v.hasLink, v.connected = true, b2f(connected)
		if !caExpiry.IsZero() {
			v.hasCA, v.caExpiry = true, float64(caExpiry.Unix())
		}
		v.hasKey, v.keyExpiry = !keyExpiry.IsZero(), 0
		if v.hasKey {
			v.keyExpiry = float64(keyExpiry.Unix())
		}
	})
}

// ForgetLink drops a link's series.
func (m *Metrics) ForgetLink(ns, es, alias string) {
	if m == nil {
		return
	}
	m.links.update(linkKey{ns, es, alias}, func(v *linkValues) { *v = linkValues{} })
}

// Probe records the verdict and duration of the agent's probe of a link (agent/probe).
func (m *Metrics) Probe(ns, es, alias string, ok bool, d time.Duration) {
	if m == nil {
		return
	}
	m.links.update(linkKey{ns, es, alias}, func(v *linkValues) {
		v.hasProbe, v.probeSuccess, v.probeDuration = true, b2f(ok), d.Seconds()
	})
}

// ForgetProbe drops a link's probe series (the link is gone, or no longer probed).
func (m *Metrics) ForgetProbe(ns, es, alias string) {
	if m == nil {
		return
	}
	m.links.update(linkKey{ns, es, alias}, func(v *linkValues) { v.hasProbe, v.probeSuccess, v.probeDuration = false, 0, 0 })
}
