package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "agent.yaml", "environment: west\nnamespace: ecklink\nheartbeatInterval: 2s\nlogFormat: json\n")
	insecure := writeFile(t, dir, "insecure.yaml", "environment: west\nnamespace: ecklink\nelasticsearchEndpoints: {data/logs: \"http://127.0.0.5:9200\"}\n")
	allowed := writeFile(t, dir, "allowed.yaml", "environment: west\nnamespace: ecklink\nallowInsecureElasticsearch: true\nelasticsearchEndpoints: {data/logs: \"http://127.0.0.5:9200\"}\ncertificateModel: {enabled: false}\n")
	bad := writeFile(t, dir, "bad.yaml", "environment: west\nnamespace: ecklink\nheartbeat: 2s\n")
	tests := []struct {
		name    string
		args    []string
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "file with flag override",
			args: []string{"--config", file, "--log-format", "text", "--elasticsearch-endpoint", "data/logs=https://127.0.0.5:9200"},
			check: func(t *testing.T, c Config) {
				if c.Environment != "west" || c.HeartbeatInterval.Seconds() != 2 || c.LogFormat != "text" {
					t.Errorf("got %+v", c)
				}
				if c.ElasticsearchEndpoints["data/logs"] != "https://127.0.0.5:9200" {
					t.Errorf("endpoints = %v", c.ElasticsearchEndpoints)
				}
			},
		},
		{name: "unknown key in file names it", args: []string{"--config", bad}, wantErr: []string{`unknown field "heartbeat"`}},
		{name: "missing environment", args: []string{"--namespace", "x"}, wantErr: []string{"environment: is required"}},
		{
			name:    "bad values name their keys",
			args:    []string{"--environment", "West_1", "--namespace", "x", "--log-level", "loud", "--advertise-endpoint", "nohost", "--elasticsearch-endpoint", "logs=http://x"},
			wantErr: []string{"environment: \"West_1\" is not a DNS label", "logLevel: \"loud\"", "advertiseEndpoints[0]", "key \"logs\": want namespace/name", "\"http://x\" is http"},
		},
		{
			name:    "http endpoint refused, naming the key and the setting",
			args:    []string{"--environment", "w", "--namespace", "x", "--elasticsearch-endpoint", "data/logs=http://127.0.0.5:9200"},
			wantErr: []string{"elasticsearchEndpoints: data/logs: \"http://127.0.0.5:9200\" is http", "credentials would travel in clear", "allowInsecureElasticsearch"},
		},
		{
			name:    "http endpoint in the file refused",
			args:    []string{"--config", insecure},
			wantErr: []string{"elasticsearchEndpoints: data/logs: \"http://127.0.0.5:9200\" is http"},
		},
		{name: "not a URL", args: []string{"--environment", "w", "--namespace", "x", "--elasticsearch-endpoint", "data/logs=ftp://h"}, wantErr: []string{"is not an https URL"}},
		{
			name: "http endpoint allowed explicitly",
			args: []string{"--environment", "w", "--namespace", "x", "--elasticsearch-endpoint", "data/logs=http://127.0.0.5:9200", "--allow-insecure-elasticsearch"},
			check: func(t *testing.T, c Config) {
				if !c.AllowInsecureElasticsearch || c.ElasticsearchEndpoints["data/logs"] != "http://127.0.0.5:9200" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "http endpoint allowed in the file",
			args: []string{"--config", allowed},
			check: func(t *testing.T, c Config) {
				if !c.AllowInsecureElasticsearch || c.CertificateModel.Enabled {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "certificate model off by default, on by flag",
			args: []string{"--environment", "w", "--namespace", "x", "--certificate-model"},
			check: func(t *testing.T, c Config) {
				if !c.CertificateModel.Enabled || c.AllowInsecureElasticsearch {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "probe interval: default, flag, off",
			args: []string{"--environment", "w", "--namespace", "x"},
			check: func(t *testing.T, c Config) {
				if c.Probe.Interval.Seconds() != 30 {
					t.Errorf("probe.interval = %v, want the default 30s", c.Probe.Interval)
				}
			},
		},
		{
			name: "probe interval flag",
			args: []string{"--environment", "w", "--namespace", "x", "--probe-interval", "0"},
			check: func(t *testing.T, c Config) {
				if c.Probe.Interval.Duration != 0 {
					t.Errorf("probe.interval = %v, want 0 (off)", c.Probe.Interval)
				}
			},
		},
		{
			name: "peer lag: defaults and flags",
			args: []string{"--environment", "w", "--namespace", "x", "--peer-lag-ca-grace", "3s", "--peer-lag-key-lead", "48h"},
			check: func(t *testing.T, c Config) {
				if c.PeerLag.CAGrace.Duration != 3*time.Second || c.PeerLag.KeyLead.Duration != 48*time.Hour || c.PeerLag.TrustExpiry.Duration != 7*24*time.Hour {
					t.Errorf("peerLag = %+v, want caGrace 3s, keyLead 48h, trustExpiry the default 168h", c.PeerLag)
				}
			},
		},
		{name: "peer lag too short", args: []string{"--environment", "w", "--namespace", "x", "--peer-lag-trust-expiry", "0s"}, wantErr: []string{"peerLag.trustExpiry: 0s: want a duration of at least 1s"}},
		{name: "probe interval too short", args: []string{"--environment", "w", "--namespace", "x", "--probe-interval", "100ms"}, wantErr: []string{"probe.interval: 100ms: want 0 (off) or a duration from 1s to 1h0m0s"}},
		{name: "probe interval too long", args: []string{"--environment", "w", "--namespace", "x", "--probe-interval", "2h"}, wantErr: []string{"probe.interval: 2h0m0s"}},
		{name: "bad endpoint flag", args: []string{"--environment", "w", "--namespace", "x", "--elasticsearch-endpoint", "nourl"}, wantErr: []string{"--elasticsearch-endpoint \"nourl\""}},
		{name: "leaf longer than CA", args: []string{"--environment", "w", "--namespace", "x", "--ca-validity", "1h", "--leaf-validity", "2h"}, wantErr: []string{"leafValidity: 2h0m0s is longer than caValidity"}},
		{
			name: "identity rotation flags",
			args: []string{"--environment", "w", "--namespace", "x", "--ca-rotate-at", "0.5", "--ca-overlap", "30s"},
			check: func(t *testing.T, c Config) {
				if c.CARotateAt != 0.5 || c.CAOverlap.Seconds() != 30 {
					t.Errorf("caRotateAt = %v, caOverlap = %v", c.CARotateAt, c.CAOverlap)
				}
				if c.Pairing.TokenMaxTTL.Hours() != 1 {
					t.Errorf("pairing.tokenMaxTTL = %v, want the default 1h", c.Pairing.TokenMaxTTL)
				}
			},
		},
		{
			name: "link caps default to 1000, flags override",
			args: []string{"--environment", "w", "--namespace", "x", "--links-per-export", "20"},
			check: func(t *testing.T, c Config) {
				if c.Limits.LinksPerPeer != DefaultLinksPerPeer || c.Limits.LinksPerExport != 20 {
					t.Errorf("limits = %+v, want linksPerPeer %d, linksPerExport 20", c.Limits, DefaultLinksPerPeer)
				}
			},
		},
		{name: "link caps out of range name their keys", args: []string{"--environment", "w", "--namespace", "x", "--links-per-peer", "0", "--links-per-export", "1000001"},
			wantErr: []string{"limits.linksPerPeer: 0: want 1 to 100000", "limits.linksPerExport: 1000001"}},
		{
			name: "pairing token cap: default and flag",
			args: []string{"--environment", "w", "--namespace", "x", "--pairing-token-max-ttl", "24h"},
			check: func(t *testing.T, c Config) {
				if c.Pairing.TokenMaxTTL.Hours() != 24 {
					t.Errorf("pairing.tokenMaxTTL = %v", c.Pairing.TokenMaxTTL)
				}
			},
		},
		{name: "pairing token cap beyond 7 days", args: []string{"--environment", "w", "--namespace", "x", "--pairing-token-max-ttl", "169h"}, wantErr: []string{"pairing.tokenMaxTTL: 169h0m0s: want a positive duration up to 168h0m0s"}},
		{name: "pairing token cap zero", args: []string{"--environment", "w", "--namespace", "x", "--pairing-token-max-ttl", "0s"}, wantErr: []string{"pairing.tokenMaxTTL: 0s"}},
		{name: "rotate-at out of range", args: []string{"--environment", "w", "--namespace", "x", "--ca-rotate-at", "1.5"}, wantErr: []string{"caRotateAt: 1.5: want a fraction"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			f := BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			t.Setenv("POD_NAMESPACE", "")
			c, err := f.Resolve()
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestEveryFlagOverrides guards the overrides table: a flag bound without its line there would
// be parsed and then silently ignored.
func TestEveryFlagOverrides(t *testing.T) {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	BindFlags(fs)
	fs.VisitAll(func(fl *pflag.Flag) {
		switch fl.Name {
		case "config", "elasticsearch-endpoint":
			return
		}
		if overrides[fl.Name] == nil {
			t.Errorf("flag --%s has no entry in overrides", fl.Name)
		}
	})
	for name := range overrides {
		if fs.Lookup(name) == nil {
			t.Errorf("overrides names %q, which is not a flag", name)
		}
	}
}
