package config

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Flags binds the agent's flags. Resolve layers them over the config file, if any.
type Flags struct {
	fs       *pflag.FlagSet
	file     string
	v        Config
	le       bool
	esEndpt  []string
	insecure bool
	certs    bool
}

// BindFlags registers the agent's flags on fs.
func BindFlags(fs *pflag.FlagSet) *Flags {
	d := Default()
	f := &Flags{fs: fs}
	fs.StringVar(&f.file, "config", "", "YAML config file; flags override its keys")
	fs.StringVar(&f.v.Environment, "environment", "", "this agent's environment name among its peers (DNS label), e.g. eu-west")
	fs.StringVar(&f.v.Namespace, "namespace", "", "namespace of the agent's identity, Peers and lease (default: the pod's)")
	fs.StringVar(&f.v.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster)")
	fs.StringVar(&f.v.KubeContext, "context", "", "kubeconfig context")
	fs.StringVar(&f.v.ListenAddress, "listen-address", d.ListenAddress, "peer gRPC listen address")
	fs.StringSliceVar(&f.v.AdvertiseEndpoints, "advertise-endpoint", nil, "host:port peers dial to reach this agent (repeatable)")
	fs.StringVar(&f.v.MetricsAddress, "metrics-address", d.MetricsAddress, "address of /metrics, /healthz, /readyz (0 disables)")
	fs.BoolVar(&f.v.Profiling, "profiling", false, "also serve Go's profiles (/debug/pprof/) on the metrics address")
	fs.StringSliceVar(&f.v.WatchNamespaces, "watch-namespace", nil, "namespace to watch (repeatable; default all)")
	fs.StringVar(&f.v.LogLevel, "log-level", d.LogLevel, "trace, debug, info, warn or error")
	fs.StringVar(&f.v.LogFormat, "log-format", d.LogFormat, "text or json")
	fs.DurationVar(&f.v.HeartbeatInterval.Duration, "heartbeat-interval", d.HeartbeatInterval.Duration, "heartbeat period to peers")
	fs.DurationVar(&f.v.ResyncInterval.Duration, "resync-interval", d.ResyncInterval.Duration, "period of full re-checks of every link")
	fs.DurationVar(&f.v.CAValidity.Duration, "ca-validity", d.CAValidity.Duration, "lifetime of the agent CA")
	fs.DurationVar(&f.v.LeafValidity.Duration, "leaf-validity", d.LeafValidity.Duration, "lifetime of the agent's leaf certificates")
	fs.Float64Var(&f.v.CARotateAt, "ca-rotate-at", 0, "fraction of the agent CA's lifetime after which the next CA is announced to peers (0: 2/3)")
	fs.DurationVar(&f.v.CAOverlap.Duration, "ca-overlap", 0, "longest a new agent CA waits for every peer's acknowledgement before it is used (0: 7 days, at most half the rest of the CA lifetime)")
	fs.DurationVar(&f.v.Signing.CAValidity.Duration, "signing-ca-validity", 0, "lifetime of the strong identity signing CA (0: one year)")
	fs.DurationVar(&f.v.Signing.CertValidity.Duration, "signing-cert-validity", 0, "lifetime of the signing certificates (0: 30 days; at most a third of the CA's)")
	fs.DurationVar(&f.v.Signing.SyncDelay.Duration, "signing-sync-delay", 0, "how long after a mounted ConfigMap changes every node sees it (0: 90s)")
	fs.StringSliceVar(&f.esEndpt, "elasticsearch-endpoint", nil, "namespace/name=https://host:port to reach an Elasticsearch from outside its cluster (repeatable)")
	fs.IntVar(&f.v.Limits.LinksPerPeer, "links-per-peer", d.Limits.LinksPerPeer, "most links one peer may hold on this agent (requests beyond are refused: LinkLimitExceeded)")
	fs.IntVar(&f.v.Limits.LinksPerExport, "links-per-export", d.Limits.LinksPerExport, "most links one ClusterExport serves over all peers (requests beyond are refused: LinkLimitExceeded)")
	fs.DurationVar(&f.v.Pairing.TokenMaxTTL.Duration, "pairing-token-max-ttl", d.Pairing.TokenMaxTTL.Duration, "longest a pairing token is redeemed after it was created, whatever its own expiry (at most 168h)")
	fs.DurationVar(&f.v.Probe.Interval.Duration, "probe-interval", d.Probe.Interval.Duration, "period of the agent's TLS handshake with each link's remote cluster server (0 turns it off)")
	fs.DurationVar(&f.v.PeerLag.CAGrace.Duration, "peer-lag-ca-grace", d.PeerLag.CAGrace.Duration, "exporting side: warn when a consumer has not applied the current transport CA this long after it was sent")
	fs.DurationVar(&f.v.PeerLag.TrustExpiry.Duration, "peer-lag-trust-expiry", d.PeerLag.TrustExpiry.Duration, "exporting side: warn when every transport CA a consumer trusts expires within this")
	fs.DurationVar(&f.v.PeerLag.KeyLead.Duration, "peer-lag-key-lead", d.PeerLag.KeyLead.Duration, "exporting side: warn when a new API key is not in effect on the consumer this long before the old one expires")
	fs.BoolVar(&f.v.Elasticsearch.UseElasticUser, "elasticsearch-use-elastic-user", false, "authenticate to Elasticsearch as ECK's elastic superuser instead of the agent's own user (fails with spec.auth.disableElasticUser)")
	fs.BoolVar(&f.insecure, "allow-insecure-elasticsearch", false, "allow http:// in elasticsearch endpoints (credentials travel in clear)")
	fs.BoolVar(&f.certs, "certificate-model", false, "let ClusterExports with model certificate serve peers (adds their transport CAs to the exported cluster's transport trust)")
	fs.BoolVar(&f.le, "leader-elect", false, "run leader election between replicas (Lease)")
	fs.StringVar(&f.v.LeaderElection.LeaseName, "lease-name", d.LeaderElection.LeaseName, "name of the leader election Lease")
	fs.DurationVar(&f.v.LeaderElection.LeaseDuration.Duration, "lease-duration", d.LeaderElection.LeaseDuration.Duration, "leader lease duration")
	fs.DurationVar(&f.v.LeaderElection.RenewDeadline.Duration, "lease-renew-deadline", d.LeaderElection.RenewDeadline.Duration, "leader renew deadline")
	fs.DurationVar(&f.v.LeaderElection.RetryPeriod.Duration, "lease-retry-period", d.LeaderElection.RetryPeriod.Duration, "leader election retry period")
	return f
}

// Resolve builds the Config: defaults, then the file, then every flag set explicitly; then fills
// the namespace from the pod and validates.
func (f *Flags) Resolve() (Config, error) {
	cfg := Default()
	if f.file != "" {
		var err error
		if cfg, err = LoadFile(f.file); err != nil {
			return cfg, err
		}
	}
	var errs []string
	f.fs.Visit(func(fl *pflag.Flag) {
		if fl.Name == "elasticsearch-endpoint" {
			errs = append(errs, f.overrideEndpoints(&cfg)...)
		} else if set := overrides[fl.Name]; set != nil {
			set(&cfg, f)
		}
	})
	if len(errs) > 0 {
		return cfg, fmt.Errorf("invalid flags: %s", strings.Join(errs, "; "))
	}
	cfg.File = f.file
	if cfg.Namespace == "" {
		cfg.Namespace = InClusterNamespace()
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// overrideEndpoints adds the --elasticsearch-endpoint flags to cfg's endpoints (they win over
// the file's) and records them as FlagEndpoints; it returns what is wrong with each bad one.
func (f *Flags) overrideEndpoints(cfg *Config) []string {
	var errs []string
	if cfg.ElasticsearchEndpoints == nil {
		cfg.ElasticsearchEndpoints = map[string]string{}
	}
	cfg.FlagEndpoints = map[string]string{}
	for _, e := range f.esEndpt {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			errs = append(errs, fmt.Sprintf("--elasticsearch-endpoint %q: want namespace/name=https://host:port", e))
			continue
		}
		cfg.ElasticsearchEndpoints[k] = v
		cfg.FlagEndpoints[k] = v
	}
	return errs
}

// overrides copies a flag set explicitly over the file's key, by flag name (all but
// --elasticsearch-endpoint, which overrideEndpoints merges).
var overrides = map[string]func(cfg *Config, f *Flags){
	"environment":                    func(cfg *Config, f *Flags) { cfg.Environment = f.v.Environment },
	"namespace":                      func(cfg *Config, f *Flags) { cfg.Namespace = f.v.Namespace },
	"kubeconfig":                     func(cfg *Config, f *Flags) { cfg.Kubeconfig = f.v.Kubeconfig },
	"context":                        func(cfg *Config, f *Flags) { cfg.KubeContext = f.v.KubeContext },
	"listen-address":                 func(cfg *Config, f *Flags) { cfg.ListenAddress = f.v.ListenAddress },
	"advertise-endpoint":             func(cfg *Config, f *Flags) { cfg.AdvertiseEndpoints = f.v.AdvertiseEndpoints },
	"metrics-address":                func(cfg *Config, f *Flags) { cfg.MetricsAddress = f.v.MetricsAddress },
	"profiling":                      func(cfg *Config, f *Flags) { cfg.Profiling = f.v.Profiling },
	"watch-namespace":                func(cfg *Config, f *Flags) { cfg.WatchNamespaces = f.v.WatchNamespaces },
	"log-level":                      func(cfg *Config, f *Flags) { cfg.LogLevel = f.v.LogLevel },
	"log-format":                     func(cfg *Config, f *Flags) { cfg.LogFormat = f.v.LogFormat },
	"heartbeat-interval":             func(cfg *Config, f *Flags) { cfg.HeartbeatInterval = f.v.HeartbeatInterval },
	"resync-interval":                func(cfg *Config, f *Flags) { cfg.ResyncInterval = f.v.ResyncInterval },
	"ca-validity":                    func(cfg *Config, f *Flags) { cfg.CAValidity = f.v.CAValidity },
	"leaf-validity":                  func(cfg *Config, f *Flags) { cfg.LeafValidity = f.v.LeafValidity },
	"ca-rotate-at":                   func(cfg *Config, f *Flags) { cfg.CARotateAt = f.v.CARotateAt },
	"ca-overlap":                     func(cfg *Config, f *Flags) { cfg.CAOverlap = f.v.CAOverlap },
	"signing-ca-validity":            func(cfg *Config, f *Flags) { cfg.Signing.CAValidity = f.v.Signing.CAValidity },
	"signing-cert-validity":          func(cfg *Config, f *Flags) { cfg.Signing.CertValidity = f.v.Signing.CertValidity },
	"signing-sync-delay":             func(cfg *Config, f *Flags) { cfg.Signing.SyncDelay = f.v.Signing.SyncDelay },
	"links-per-peer":                 func(cfg *Config, f *Flags) { cfg.Limits.LinksPerPeer = f.v.Limits.LinksPerPeer },
	"links-per-export":               func(cfg *Config, f *Flags) { cfg.Limits.LinksPerExport = f.v.Limits.LinksPerExport },
	"pairing-token-max-ttl":          func(cfg *Config, f *Flags) { cfg.Pairing.TokenMaxTTL = f.v.Pairing.TokenMaxTTL },
	"probe-interval":                 func(cfg *Config, f *Flags) { cfg.Probe.Interval = f.v.Probe.Interval },
	"peer-lag-ca-grace":              func(cfg *Config, f *Flags) { cfg.PeerLag.CAGrace = f.v.PeerLag.CAGrace },
	"peer-lag-trust-expiry":          func(cfg *Config, f *Flags) { cfg.PeerLag.TrustExpiry = f.v.PeerLag.TrustExpiry },
	"peer-lag-key-lead":              func(cfg *Config, f *Flags) { cfg.PeerLag.KeyLead = f.v.PeerLag.KeyLead },
	"elasticsearch-use-elastic-user": func(cfg *Config, f *Flags) { cfg.Elasticsearch.UseElasticUser = f.v.Elasticsearch.UseElasticUser },
	"allow-insecure-elasticsearch":   func(cfg *Config, f *Flags) { cfg.AllowInsecureElasticsearch = f.insecure },
	"certificate-model":              func(cfg *Config, f *Flags) { cfg.CertificateModel.Enabled = f.certs },
	"leader-elect":                   func(cfg *Config, f *Flags) { cfg.LeaderElection.Enabled = f.le },
	"lease-name":                     func(cfg *Config, f *Flags) { cfg.LeaderElection.LeaseName = f.v.LeaderElection.LeaseName },
	"lease-duration":                 func(cfg *Config, f *Flags) { cfg.LeaderElection.LeaseDuration = f.v.LeaderElection.LeaseDuration },
	"lease-renew-deadline":           func(cfg *Config, f *Flags) { cfg.LeaderElection.RenewDeadline = f.v.LeaderElection.RenewDeadline },
	"lease-retry-period":             func(cfg *Config, f *Flags) { cfg.LeaderElection.RetryPeriod = f.v.LeaderElection.RetryPeriod },
}
