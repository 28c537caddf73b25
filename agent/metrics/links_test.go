package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLinkSeries: the per-link gauges appear, change and disappear with Link, Probe,
// ForgetProbe and ForgetLink as the GaugeVecs they replaced did: a zero CA expiry keeps the last
// one, a zero key expiry drops its series, a forgotten probe leaves the link's other series.
func TestLinkSeries(t *testing.T) {
	ca := time.Unix(2000000000, 0)
	key := time.Unix(1900000000, 0)
	const (
		connected = "ecklink_link_connected"
		caExpiry  = "ecklink_link_ca_expiry_timestamp_seconds"
		keyExpiry = "ecklink_link_api_key_expiry_timestamp_seconds"
		success   = "ecklink_link_probe_success"
		duration  = "ecklink_link_probe_duration_seconds"
	)
	names := []string{connected, caExpiry, keyExpiry, success, duration}
	m := New()
	steps := []struct {
		name string
		do   func()
		want string // the series of names, in exposition order, without HELP and TYPE lines
	}{
		{"nothing recorded", func() {}, ""},
		{"a link with both expiries", func() { m.Link("search", "ccs", "logs", true, ca, key) }, `
ecklink_link_api_key_expiry_timestamp_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 1.9e+09
ecklink_link_ca_expiry_timestamp_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 2e+09
ecklink_link_connected{alias="logs",elasticsearch="ccs",es_namespace="search"} 1
`},
		{"disconnected, no CA expiry, key never expires", func() { m.Link("search", "ccs", "logs", false, time.Time{}, time.Time{}) }, `
ecklink_link_ca_expiry_timestamp_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 2e+09
ecklink_link_connected{alias="logs",elasticsearch="ccs",es_namespace="search"} 0
`},
		{"probed, and a probe of another link", func() {
			m.Probe("search", "ccs", "logs", true, 16*time.Millisecond)
			m.Probe("search", "ccs", "metrics", false, 2*time.Second)
		}, `
ecklink_link_ca_expiry_timestamp_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 2e+09
ecklink_link_connected{alias="logs",elasticsearch="ccs",es_namespace="search"} 0
ecklink_link_probe_duration_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 0.016
ecklink_link_probe_duration_seconds{alias="metrics",elasticsearch="ccs",es_namespace="search"} 2
ecklink_link_probe_success{alias="logs",elasticsearch="ccs",es_namespace="search"} 1
ecklink_link_probe_success{alias="metrics",elasticsearch="ccs",es_namespace="search"} 0
`},
		{"probe forgotten: the link's other series stay", func() { m.ForgetProbe("search", "ccs", "logs"); m.ForgetProbe("search", "ccs", "metrics") }, `
ecklink_link_ca_expiry_timestamp_seconds{alias="logs",elasticsearch="ccs",es_namespace="search"} 2e+09
ecklink_link_connected{alias="logs",elasticsearch="ccs",es_namespace="search"} 0
`},
		{"link forgotten", func() {
			m.Probe("search", "ccs", "logs", true, time.Millisecond)
			m.ForgetLink("search", "ccs", "logs")
		}, ""},
	}
	for _, s := range steps {
		s.do()
		if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(expo(s.want)), names...); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	if n := len(m.links.links); n != 0 {
		t.Errorf("%d links held after every series was forgotten, want 0", n)
	}
}

// expo adds the HELP and TYPE lines of the metrics named in series.
func expo(series string) string {
	help := map[string]string{
		"ecklink_link_connected":                        "1 when GET /_remote/info reports the link's alias connected.",
		"ecklink_link_ca_expiry_timestamp_seconds":      "Expiry of the newest remote CA applied for a link (local side).",
		"ecklink_link_api_key_expiry_timestamp_seconds": "Expiry of the API key in effect for a link (local side); absent for keys that never expire.",
		"ecklink_link_probe_success":                    "1 when the agent's last TLS handshake with the link's proxy address, as Elasticsearch makes it (server name, CA ConfigMap), succeeded.",
		"ecklink_link_probe_duration_seconds":           "Duration of the agent's last probe of the link (TCP connect and TLS handshake).",
	}
	var out strings.Builder
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(series), "\n") {
		if line == "" {
			continue
		}
		name := line[:strings.IndexByte(line, '{')]
		if name != last {
			out.WriteString("# HELP " + name + " " + help[name] + "\n# TYPE " + name + " gauge\n")
			last = name
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}
