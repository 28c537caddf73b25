// Package metrics defines the agent's Prometheus metrics. Every method is safe on a nil
// *Metrics, so components work without metrics in unit tests.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "ecklink"

// linkLabels name a link on the local side: the local Elasticsearch (its namespace as
// es_namespace, so that it never clashes with the namespace label Prometheus gives the scraped
// target, and honorLabels is not needed) and the remote cluster alias.
var linkLabels = []string{"es_namespace", "elasticsearch", "alias"}

// Metrics holds the agent's collectors.
type Metrics struct {
	registry *prometheus.Registry

	peerUp          *prometheus.GaugeVec
	peerHeartbeat   *prometheus.GaugeVec
	propagation     prometheus.Histogram
	nacks           *prometheus.CounterVec
	reconcileErrors *prometheus.CounterVec
	leader          prometheus.Gauge
	portRefusals    *prometheus.CounterVec
	pairRefusals    *prometheus.CounterVec
	peerLag         *prometheus.GaugeVec
	// links holds the per-link gauges (links.go).
	links *linkCollector
}

// New registers the collectors on a new registry (plus Go and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		registry: r,
		peerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "peer_up",
			Help: "1 when the stream with the peer is established, else 0."}, []string{"peer"}),
		peerHeartbeat: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "peer_last_heartbeat_timestamp_seconds",
			Help: "When the peer's last heartbeat arrived."}, []string{"peer"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "propagation_seconds",
			Help:    "From a new remote CA being published to the peer to the peer reporting it applied in its CA ConfigMap.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "nacks_total",
			Help: "Updates refused, by direction (sent: we refused the peer's; received: the peer refused ours) and reason."}, []string{"peer", "direction", "reason"}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_errors_total",
			Help: "Failed reconciles, by controller."}, []string{"controller"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader",
			Help: "1 when this replica is the active one."}),
		portRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "peer_port_refusals_total",
			Help: "Connections and anonymous calls the peer port refused, by reason (failed handshake, a capacity, rate limit)."}, []string{"reason"}),
		links: newLinkCollector(),
		pairRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "pairing_refusals_total",
			Help: "Pair calls refused after the rate limit, by reason (no open token, wrong secret, expired, wrong peer...)."}, []string{"reason"}),
	}
	m.peerLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "link_peer_lag_seconds",
		Help: "Exporting side: how long past due the peer's most lagging link of the ClusterExport is (current transport CA not applied within peerLag.caGrace, trusted CAs expiring within peerLag.trustExpiry, new API key not in effect peerLag.keyLead before the old one expires); 0 when none lags."},
		[]string{"peer", "export_namespace", "export"})
	r.MustRegister(m.peerLag, m.links)
	r.MustRegister(m.peerUp, m.peerHeartbeat, m.propagation, m.nacks, m.reconcileErrors, m.leader,
		m.portRefusals, m.pairRefusals)
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// PeerUp records the stream state of a peer.
func (m *Metrics) PeerUp(peer string, up bool) {
	if m == nil {
		return
	}
	m.peerUp.WithLabelValues(peer).Set(b2f(up))
}

// PeerHeartbeat records the last heartbeat of a peer.
func (m *Metrics) PeerHeartbeat(peer string, at time.Time) {
	if m == nil || at.IsZero() {
		return
	}
	m.peerHeartbeat.WithLabelValues(peer).Set(float64(at.UnixMilli()) / 1000)
}

// ForgetPeer drops a peer's series.
func (m *Metrics) ForgetPeer(peer string) {
	if m == nil {
		return
	}
	m.peerUp.DeleteLabelValues(peer)
	m.peerHeartbeat.DeleteLabelValues(peer)
}

// Propagation observes one CA propagation.
func (m *Metrics) Propagation(d time.Duration) {
	if m == nil {
		return
	}
	m.propagation.Observe(d.Seconds())
}

// Nack counts a refused update. The reason comes from the peer (direction "received") or
// names a check of ours; either way it becomes a label value only if it is one of
// NackReasons, else "other", so that a peer cannot create series at will. direction is
// "sent" or "received"; anything else counts as "received".
func (m *Metrics) Nack(peer, direction, reason string) {
	if m == nil {
		return
	}
	if direction != "sent" {
		direction = "received"
	}
	m.nacks.WithLabelValues(peer, direction, NackReason(reason)).Inc()
}

// ReconcileError counts a failed reconcile.
func (m *Metrics) ReconcileError(controller string) {
	if m == nil {
		return
	}
	m.reconcileErrors.WithLabelValues(controller).Inc()
}

// Leader records whether this replica is active.
func (m *Metrics) Leader(active bool) {
	if m == nil {
		return
	}
	m.leader.Set(b2f(active))
}

// PortRefused counts a connection or anonymous call the peer port refused; reason is one of
// the port's fixed set.
func (m *Metrics) PortRefused(reason string) {
	if m == nil {
		return
	}
	m.portRefusals.WithLabelValues(reason).Inc()
}

// PairingRefused counts a refused Pair call; reason is one of the acceptor's fixed set.
func (m *Metrics) PairingRefused(reason string) {
	if m == nil {
		return
	}
	m.pairRefusals.WithLabelValues(reason).Inc()
}

// PeerLag records how long past due a peer's most lagging link of an export is (0: none lags).
func (m *Metrics) PeerLag(peer, exportNamespace, export string, seconds float64) {
	if m == nil {
		return
	}
	m.peerLag.WithLabelValues(peer, exportNamespace, export).Set(seconds)
}

// ForgetPeerLag drops the lag series of a peer that no longer holds links of the export.
func (m *Metrics) ForgetPeerLag(peer, exportNamespace, export string) {
	if m == nil {
		return
	}
	m.peerLag.DeleteLabelValues(peer, exportNamespace, export)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
