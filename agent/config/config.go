// Package config holds the agent's configuration: a YAML file and flags (flags win) become one
// typed Config, and Validate names the bad key and what is expected.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Config is the agent's runtime configuration.
type Config struct {
	// Environment is this agent's name among its peers (a DNS label), e.g. "eu-west".
	Environment string `json:"environment"`
	// Namespace is where the agent keeps its identity, Peers and lease. Defaults to the pod's.
	Namespace string `json:"namespace"`
	// Kubeconfig and KubeContext select a kubeconfig; empty means in-cluster.
	Kubeconfig  string `json:"kubeconfig"`
	KubeContext string `json:"kubeContext"`
	// ListenAddress is where the peer gRPC server listens.
	ListenAddress string `json:"listenAddress"`
	// AdvertiseEndpoints are the host:port addresses peers dial (put in pairing tokens).
	AdvertiseEndpoints []string `json:"advertiseEndpoints"`
	// MetricsAddress serves /metrics, /healthz and /readyz; "0" disables it.
	MetricsAddress string `json:"metricsAddress"`
	// Profiling also serves Go's profiles (/debug/pprof/) on MetricsAddress, for diagnosing CPU
	// and memory use. Off by default: a profile reveals the process's internals, and a CPU or
	// trace profile costs CPU while it runs.
	Profiling bool `json:"profiling"`
	// WatchNamespaces limits the agent to these namespaces; empty means all.
	WatchNamespaces []string `json:"watchNamespaces"`
	// LogLevel is trace, debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `json:"logLevel"`
	LogFormat string `json:"logFormat"`
	// HeartbeatInterval is how often heartbeats go to peers; a peer silent for 3 intervals is
	// considered gone.
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	// ResyncInterval re-checks every link (e.g. _remote/info) even without events.
	ResyncInterval Duration `json:"resyncInterval"`
	// Identity lifetimes of the agent CA and its leaf certificates.
	CAValidity   Duration `json:"caValidity"`
	LeafValidity Duration `json:"leafValidity"`
	// CARotateAt is the fraction of the agent CA's lifetime after which the next CA is staged
	// and announced to peers; 0 keeps the identity's default (2/3).
	CARotateAt float64 `json:"caRotateAt"`
	// CAOverlap is the longest a staged CA waits for every peer's acknowledgement before it is
	// used anyway; 0 keeps the identity's default (7 days, at most half the rest of the CA's
	// lifetime after caRotateAt).
	CAOverlap Duration `json:"caOverlap"`
	// Signing configures strong identity verification (Elasticsearch 9.3+).
	Signing Signing `json:"signing"`
	// ElasticsearchEndpoints overrides how the agent reaches an Elasticsearch, as
	// "namespace/name" -> URL; for agents outside the cluster, where Service names do not resolve.
	// Only https URLs, unless AllowInsecureElasticsearch.
	ElasticsearchEndpoints map[string]string `json:"elasticsearchEndpoints"`
	// AllowInsecureElasticsearch lets elasticsearchEndpoints use http:// URLs, over which the
	// agent's Elasticsearch credentials travel in clear. Off by default; for a TLS-terminating
	// proxy on the same host, never across a network.
	AllowInsecureElasticsearch bool `json:"allowInsecureElasticsearch"`
	// CertificateModel gates exports with the certificate security model.
	CertificateModel CertificateModel `json:"certificateModel"`
	// LeaderElection runs one active replica out of several.
	LeaderElection LeaderElection `json:"leaderElection"`
	// Limits bound what a paired peer can make this agent hold.
	Limits Limits `json:"limits"`
	// Pairing bounds the pairing tokens this agent redeems.
	Pairing Pairing `json:"pairing"`
	// Probe configures the agent's own probe of each link's data path.
	Probe Probe `json:"probe"`
	// Elasticsearch sets how the agent authenticates to Elasticsearch.
	Elasticsearch Elasticsearch `json:"elasticsearch"`
	// PeerLag says when the exporting side warns that a consumer lags behind a rotation.
	PeerLag PeerLag `json:"peerLag"`

	// File is the config file this came from, if any. The agent watches it and applies changes
	// of ElasticsearchEndpoints without a restart.
	File string `json:"-"`
	// FlagEndpoints are the endpoint overrides given as flags; they win over the file's.
	FlagEndpoints map[string]string `json:"-"`
}

// Signing sets the lifetimes of the signing CA and certificates (zero: one year and 30 days)
// and how long after a write of a mounted ConfigMap every node sees it (the kubelet's sync
// period plus its cache TTL; zero: 90s).
type Signing struct {
	CAValidity   Duration `json:"caValidity"`
	CertValidity Duration `json:"certValidity"`
	SyncDelay    Duration `json:"syncDelay"`
}

// Limits bound the links a paired peer can open on this agent as the exporting side: an import
// request beyond either cap is refused (reason LinkLimitExceeded, naming the setting) and
// nothing of it is kept.
type Limits struct {
	// LinksPerPeer is the most links one peer may hold, granted or refused (default 1000).
	LinksPerPeer int `json:"linksPerPeer"`
	// LinksPerExport is the most links one ClusterExport serves, over all peers (default 1000).
	LinksPerExport int `json:"linksPerExport"`
}

// Default link caps.
const (
	DefaultLinksPerPeer   = 1000
	DefaultLinksPerExport = 1000
	// maxLinkCap keeps a typo from disabling the caps (memory grows with them).
	maxLinkCap = 100000
)

// Pairing bounds pairing tokens: the agent redeems a token at most TokenMaxTTL after its Secret
// was created, whatever expiry the token asks for (agentctl's --ttl).
type Pairing struct {
	TokenMaxTTL Duration `json:"tokenMaxTTL"`
}

// MaxTokenTTL is the longest TokenMaxTTL allowed: a pairing token is meant to be used at once.
// It is pairing.MaxTTL, the longest agentctl's --ttl takes (config stays free of the agent's
// packages).
const MaxTokenTTL = 7 * 24 * time.Hour

// Probe configures the agent's periodic TLS handshake with each link's remote cluster server,
// as the local Elasticsearch makes it (RemoteCluster condition ProbeSucceeded).
type Probe struct {
	// Interval between two probes of a link (default 30s); 0 turns the probe off.
	Interval Duration `json:"interval"`
}

// Bounds of probe.interval.
const (
	minProbeInterval = time.Second
	maxProbeInterval = time.Hour
)

// PeerLag says when the exporting side warns (ClusterExport condition PeersCurrent, Event,
// ecklink_link_peer_lag_seconds) that a consumer lags behind a rotation, before a link breaks.
type PeerLag struct {
	// CAGrace is how long a consumer may take to apply the exported Elasticsearch's current
	// transport CA (default 10m).
	CAGrace Duration `json:"caGrace"`
	// TrustExpiry warns when every transport CA a consumer trusts for a link expires within it
	// (default 168h).
	TrustExpiry Duration `json:"trustExpiry"`
	// KeyLead warns when a new API key is not in effect on the consumer this long before the key
	// it uses expires (default 24h).
	KeyLead Duration `json:"keyLead"`
}

// Elasticsearch sets how the agent authenticates to Elasticsearch. By default it has its own user
// in each cluster, with only the privileges its calls need (agent/esuser); UseElasticUser makes it
// use ECK's elastic superuser instead, and provision no user (it fails where
// spec.auth.disableElasticUser is set).
type Elasticsearch struct {
	UseElasticUser bool `json:"useElasticUser"`
}

// CertificateModel gates the certificate security model on the exporting side: such an export
// adds the consumer's transport CA to the exported Elasticsearch's transport trust, which gives
// the consumer's nodes near-full read access, so an export alone cannot turn it on.
type CertificateModel struct {
	// Enabled lets ClusterExports with model certificate serve their peers; off by default.
	Enabled bool `json:"enabled"`
}

// LeaderElection configures the Lease-based election between replicas.
type LeaderElection struct {
	Enabled       bool     `json:"enabled"`
	LeaseName     string   `json:"leaseName"`
	LeaseDuration Duration `json:"leaseDuration"`
	RenewDeadline Duration `json:"renewDeadline"`
	RetryPeriod   Duration `json:"retryPeriod"`
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "10s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		d.Duration = time.Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want e.g. 10s, 5m, 24h", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

// Default returns the defaults.
func Default() Config {
	return Config{
		ListenAddress:     ":9400",
		MetricsAddress:    ":9401",
		LogLevel:          "info",
		LogFormat:         "text",
		HeartbeatInterval: Duration{10 * time.Second},
		ResyncInterval:    Duration{30 * time.Second},
		CAValidity:        Duration{365 * 24 * time.Hour},
		LeafValidity:      Duration{24 * time.Hour},
		Pairing:           Pairing{TokenMaxTTL: Duration{time.Hour}},
		Probe:             Probe{Interval: Duration{30 * time.Second}},
		PeerLag:           PeerLag{CAGrace: Duration{10 * time.Minute}, TrustExpiry: Duration{7 * 24 * time.Hour}, KeyLead: Duration{24 * time.Hour}},
		LeaderElection: LeaderElection{
			LeaseName:     "ecklink-agent",
			LeaseDuration: Duration{15 * time.Second},
			RenewDeadline: Duration{10 * time.Second},
			RetryPeriod:   Duration{2 * time.Second},
		},
		Limits: Limits{LinksPerPeer: DefaultLinksPerPeer, LinksPerExport: DefaultLinksPerExport},
	}
}

// LoadFile reads a YAML file over the defaults; unknown keys are errors that name the key.
func LoadFile(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("failed to read config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("invalid config file %s: %w", path, err)
	}
	return cfg, nil
}

// ValidEnvironment checks an environment name.
func ValidEnvironment(name string) error {
	if len(validation.IsDNS1123Label(name)) > 0 {
		return fmt.Errorf("%q is not a DNS label: use lowercase letters, digits and '-', at most 63 characters", name)
	}
	return nil
}

// Validate checks every key and names each bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	c.validateAddresses(bad)
	c.validateLogging(bad)
	c.validateIdentity(bad)
	c.validateEndpoints(bad)
	c.validateBounds(bad)
	c.validateLeaderElection(bad)
	return errors.Join(errs...)
}

// badKey records that key is invalid, with a message of format and args.
type badKey func(key, format string, args ...any)

// validateAddresses checks who the agent is and where it listens, is reached and watches.
func (c *Config) validateAddresses(bad badKey) {
	if c.Environment == "" {
		bad("environment", "is required (this agent's name among its peers, e.g. eu-west)")
	} else if err := ValidEnvironment(c.Environment); err != nil {
		bad("environment", "%v", err)
	}
	if c.Namespace == "" {
		bad("namespace", "is required (set it, or run in a pod where it is detected)")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		bad("listenAddress", "%q is not host:port", c.ListenAddress)
	}
	for i, e := range c.AdvertiseEndpoints {
		if host, port, err := net.SplitHostPort(e); err != nil || host == "" || port == "" {
			bad(fmt.Sprintf("advertiseEndpoints[%d]", i), "%q is not host:port", e)
		}
	}
	if c.MetricsAddress != "0" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			bad("metricsAddress", "%q is not host:port (or 0 to disable)", c.MetricsAddress)
		}
	}
	for i, ns := range c.WatchNamespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			bad(fmt.Sprintf("watchNamespaces[%d]", i), "%q is not a namespace name", ns)
		}
	}
}

// validateLogging checks the log level and format.
func (c *Config) validateLogging(bad badKey) {
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("logLevel", "%q: want trace, debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("logFormat", "%q: want text or json", c.LogFormat)
	}
}

// validateIdentity checks the periods and lifetimes: the stream's, the agent CA's and the
// signing CA's.
func (c *Config) validateIdentity(bad badKey) {
	positive := map[string]time.Duration{
		"heartbeatInterval": c.HeartbeatInterval.Duration,
		"resyncInterval":    c.ResyncInterval.Duration,
		"caValidity":        c.CAValidity.Duration,
		"leafValidity":      c.LeafValidity.Duration,
	}
	for _, k := range []string{"heartbeatInterval", "resyncInterval", "caValidity", "leafValidity"} {
		if positive[k] <= 0 {
			bad(k, "must be a positive duration, e.g. 10s")
		}
	}
	if c.LeafValidity.Duration > c.CAValidity.Duration {
		bad("leafValidity", "%s is longer than caValidity %s", c.LeafValidity, c.CAValidity)
	}
	if c.CARotateAt != 0 && (c.CARotateAt <= 0 || c.CARotateAt >= 1) {
		bad("caRotateAt", "%v: want a fraction between 0 and 1, e.g. 0.67", c.CARotateAt)
	}
	if c.CAOverlap.Duration < 0 {
		bad("caOverlap", "must be a positive duration, e.g. 24h (or 0 for the default)")
	}
	if sg := c.Signing; sg.CAValidity.Duration < 0 || sg.CertValidity.Duration < 0 || sg.SyncDelay.Duration < 0 {
		bad("signing", "caValidity, certValidity and syncDelay must be positive durations (or 0 for the defaults)")
	} else if sg.CAValidity.Duration > 0 || sg.CertValidity.Duration > 0 {
		ca, cert := sg.CAValidity.Duration, sg.CertValidity.Duration
		if ca == 0 {
			ca = 365 * 24 * time.Hour
		}
		if cert == 0 {
			cert = 30 * 24 * time.Hour
		}
		if 3*cert > ca {
			bad("signing.certValidity", "%s must be at most a third of signing.caValidity %s", cert, ca)
		}
	}
}

// validateEndpoints checks the Elasticsearch endpoint overrides.
func (c *Config) validateEndpoints(bad badKey) {
	for key, u := range c.ElasticsearchEndpoints {
		parts := strings.Split(key, "/")
		if len(parts) != 2 || len(validation.IsDNS1123Label(parts[0])) > 0 || parts[1] == "" {
			bad("elasticsearchEndpoints", "key %q: want namespace/name", key)
		}
		pu, err := url.Parse(u)
		switch {
		case err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http"):
			bad("elasticsearchEndpoints", "%s: %q is not an https URL", key, u)
		case pu.Scheme == "http" && !c.AllowInsecureElasticsearch:
			bad("elasticsearchEndpoints", "%s: %q is http: the agent's Elasticsearch credentials would travel in clear; "+
				"use https, or set allowInsecureElasticsearch: true (flag --allow-insecure-elasticsearch) to accept that", key, u)
		}
	}
}

// validateBounds checks the link caps, the pairing token TTL, the probe and the lag warnings.
func (c *Config) validateBounds(bad badKey) {
	if n := c.Limits.LinksPerPeer; n < 1 || n > maxLinkCap {
		bad("limits.linksPerPeer", "%d: want 1 to %d", n, maxLinkCap)
	}
	if n := c.Limits.LinksPerExport; n < 1 || n > maxLinkCap {
		bad("limits.linksPerExport", "%d: want 1 to %d", n, maxLinkCap)
	}
	if ttl := c.Pairing.TokenMaxTTL.Duration; ttl <= 0 || ttl > MaxTokenTTL {
		bad("pairing.tokenMaxTTL", "%s: want a positive duration up to %s, e.g. 1h", ttl, MaxTokenTTL)
	}
	if iv := c.Probe.Interval.Duration; iv != 0 && (iv < minProbeInterval || iv > maxProbeInterval) {
		bad("probe.interval", "%s: want 0 (off) or a duration from %s to %s, e.g. 30s", iv, minProbeInterval, maxProbeInterval)
	}
	for key, d := range map[string]time.Duration{"peerLag.caGrace": c.PeerLag.CAGrace.Duration, "peerLag.trustExpiry": c.PeerLag.TrustExpiry.Duration, "peerLag.keyLead": c.PeerLag.KeyLead.Duration} {
		if d < time.Second {
			bad(key, "%s: want a duration of at least 1s, e.g. 10m", d)
		}
	}
}

// validateLeaderElection checks the Lease settings, when election is on.
func (c *Config) validateLeaderElection(bad badKey) {
	if le := c.LeaderElection; le.Enabled {
		if le.LeaseName == "" {
			bad("leaderElection.leaseName", "is required")
		}
		if le.RenewDeadline.Duration >= le.LeaseDuration.Duration || le.RetryPeriod.Duration <= 0 {
			bad("leaderElection", "want retryPeriod > 0 and renewDeadline < leaseDuration")
		}
	}
}

// InClusterNamespace returns the pod's namespace, or "" outside a pod.
func InClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	data, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
