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
		{FileSettingsSecret("logs"), "logs-es-file-settings"},
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
	if es, ok := OfFileSettingsSecret("logs-es-file-settings"); !ok || es != "logs" {
		t.Errorf("OfFileSettingsSecret = %q, %v; want logs", es, ok)
	}
	if _, ok := OfFileSettingsSecret("logs-es-secure-settings"); ok {
		t.Error("OfFileSettingsSecret accepted logs-es-secure-settings")
	}
}

// TestFileBasedSecureSettings: ECK 3.5 uses file-based secure settings only with the annotation
// exactly "true" on Elasticsearch 9.5.0 or later (pre-releases of 9.5.0 included, version.MinFor).
func TestFileBasedSecureSettings(t *testing.T) {
	on := map[string]string{FileBasedSecureSettingsAnnotation: "true"}
	for _, tc := range []struct {
		ann     map[string]string
		version string
		want    bool
	}{
		{on, "9.5.0", true},
		{on, "9.5.0-SNAPSHOT", true},
		{on, "9.12.1", true},
		{on, "10.0.0", true},
		{on, "9.4.3", false},
		{on, "8.19.2", false},
		{on, "9.5", false},
		{map[string]string{FileBasedSecureSettingsAnnotation: "True"}, "9.5.0", false},
		{nil, "9.5.0", false},
	} {
		if got := FileBasedSecureSettings(tc.ann, tc.version); got != tc.want {
			t.Errorf("FileBasedSecureSettings(%v, %q) = %v, want %v", tc.ann, tc.version, got, tc.want)
		}
	}
}
