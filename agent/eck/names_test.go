package eck

import "testing"

// TestNames: the names ECK derives from an Elasticsearch called "logs", as ECK spells them.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{TransportCertsPublic("logs"), "logs-es-transport-certs-public"},
		{HTTPCertsPublic("logs"), "logs-es-http-certs-public"},
		{ElasticUserSecret("logs"), "logs-es-elastic-user"},
		{SecureSettingsSecret("logs"), "logs-es-secure-settings"},
		{HTTPService("logs"), "logs-es-http"},
		{TransportService("logs"), "logs-es-transport"},
		{RemoteClusterService("logs"), "logs-es-remote-cluster"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for _, tc := range []struct {
		name, es string
		ok       bool
	}{
		{"logs-es-transport-certs-public", "logs", true},
		{"logs-es-transport-certs-public-x", "", false},
		{"logs-es-http-certs-public", "", false},
	} {
		if es, ok := OfTransportCertsPublic(tc.name); ok != tc.ok || (ok && es != tc.es) {
			t.Errorf("OfTransportCertsPublic(%q) = %q, %v; want %q, %v", tc.name, es, ok, tc.es, tc.ok)
		}
	}
}
