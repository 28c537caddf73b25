// Package app assembles the agent: its identity, the informers, the peer stream (server and
// dialer), the application protocol over it (package protocol), the two halves and the peer
// controller, run as one set of tasks. It holds no protocol logic of its own.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/agent/exporter"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/importer"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peers"
	"github.com/ecklink/ecklink/agent/peertrust"
	"github.com/ecklink/ecklink/agent/probe"
	"github.com/ecklink/ecklink/agent/protocol"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/memtrim"
	"github.com/ecklink/ecklink/internal/task"
	iversion "github.com/ecklink/ecklink/internal/version"
)

// Agent is an assembled agent, ready to Run.
type Agent struct {
	cfg     config.Config
	log     hclog.Logger
	version string

	kube     kubernetes.Interface
	identity *identity.Identity
	cache    *cache.Cache
	manager  *peering.Manager
	peers    *peers.Controller
	// peerTrust keeps the agent CA bundles peers announce (one Secret per peer).
	peerTrust *peertrust.Store
	exporter  *exporter.Exporter
	importer  *importer.Importer
	recorder  *kube.Recorder
	resolver  *elastic.Resolver
	metrics   *metrics.Metrics
	// leaseKube renews the Lease: a client of its own (see newLeaseClient).
	leaseKube kubernetes.Interface
	// users provisions the agent's own Elasticsearch users (nil with useElasticUser).
	users *esuser.Controller
	// acting is true while this replica acts (leads, with informers synced).
	acting atomic.Bool
	port   *peering.Port
	tokens *pairing.TokenIndex
	dialer *peering.Dialer
	prober *probe.Prober // nil when probe.interval is 0
	trust  *protocol.TrustSync
	joiner *pairing.Joiner
	ready  chan struct{}
}

// New builds the agent from its configuration.
func New(ctx context.Context, cfg config.Config, log hclog.Logger, version string) (*Agent, error) {
	cl, err := newClients(cfg, version, log)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, version: version, kube: cl.kube, leaseKube: cl.lease, ready: make(chan struct{}), metrics: metrics.New()}
	if a.recorder, err = kube.NewRecorder(ctx, kube.RecorderConfig{Kube: cl.kube}); err != nil {
		return nil, err
	}
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: cl.dyn, Recorder: a.recorder})
	if err != nil {
		return nil, err
	}
	if a.identity, err = identity.New(identity.Config{
		Environment: cfg.Environment, Namespace: cfg.Namespace, Client: cl.kube, Endpoints: cfg.AdvertiseEndpoints,
		CAValidity: cfg.CAValidity.Duration, LeafValidity: cfg.LeafValidity.Duration, Logger: log,
		RotateAt: cfg.CARotateAt, Overlap: cfg.CAOverlap.Duration,
	}); err != nil {
		return nil, err
	}
	if a.cache, err = cache.New(cache.Config{Kube: cl.watchKube, Dynamic: cl.watchDyn, Namespaces: cfg.WatchNamespaces, AgentNamespace: cfg.Namespace, Logger: log}); err != nil {
		return nil, err
	}
	if err := a.newElastic(cfg, cl, log); err != nil {
		return nil, err
	}
	// The Manager is built before the parts that publish through it, so its handler is a
	// Forwarder given the Router once those exist (see package protocol).
	handler := &protocol.Forwarder{}
	if a.manager, err = peering.NewManager(peering.Config{
		Environment: cfg.Environment, Version: version, Handler: handler, Logger: log, HeartbeatInterval: cfg.HeartbeatInterval.Duration,
		Credentials:  streamCredentials{a},
		Capabilities: []string{peering.CapabilityExportCA, peering.CapabilityCAStatus},
	}); err != nil {
		return nil, err
	}
	if err := a.newHalves(cfg, cl, crds, log); err != nil {
		return nil, err
	}
	if a.peerTrust, err = peertrust.New(cl.kube, cfg.Namespace, func(env string) { a.peers.TrustChanged(env) }); err != nil {
		return nil, err
	}
	if a.peers, err = peers.New(peers.Config{
		Cache: a.cache, CRDs: crds, Sessions: a.manager, Cleaners: []peers.Cleaner{a.exporter, a.importer}, Store: a.peerTrust,
		Metrics: a.metrics, Logger: log,
	}); err != nil {
		return nil, err
	}
	if err := a.newPairing(cfg, cl.kube, crds, log, version); err != nil {
		return nil, err
	}
	router, err := protocol.NewRouter(protocol.RouterConfig{
		Exporter: a.exporter, Importer: a.importer, Peers: a.peers, Trust: a.trust, Metrics: a.metrics, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	handler.Set(router)
	if err := a.newPort(cfg, cl.kube, cl.watchKube, crds, log, version); err != nil {
		return nil, err
	}
	if cfg.Probe.Interval.Duration > 0 {
		probeCRDs, err := kube.NewClient(kube.ClientConfig{Dynamic: cl.probeDyn, Recorder: a.recorder})
		if err != nil {
			return nil, err
		}
		if a.prober, err = probe.New(probe.Config{Cache: a.cache, CRDs: probeCRDs, Metrics: a.metrics, Logger: log, Interval: cfg.Probe.Interval.Duration}); err != nil {
			return nil, err
		}
	}
	a.registerMetrics(version)
	if a.dialer, err = peering.NewDialer(peering.DialerConfig{
		Manager: a.manager, Peers: a.peers,
		TLSConfig: func(env string) *tls.Config { return a.identity.ClientTLSConfig(a.peers, env) },
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// clients are the agent's Kubernetes clients, each with rate limits of its own.
type clients struct {
	rest *rest.Config
	kube kubernetes.Interface
	dyn  dynamic.Interface
	// watchKube and watchDyn serve the informers: they wait out an unreachable API server, so
	// the cache is fresh again as soon as the API is back.
	watchKube kubernetes.Interface
	watchDyn  dynamic.Interface
	// pods marks pods as updated, which is best effort: a client of its own, so that it never
	// waits for, nor delays, the writes of the CA path.
	pods kubernetes.Interface
	// probeDyn writes the link probe verdicts, best effort too: the prober's first round after
	// a thousand links connect writes a thousand statuses, which the writes of the CA path must
	// not queue behind.
	probeDyn dynamic.Interface
	// lease renews the Lease (see newLeaseClient); nil without leader election.
	lease kubernetes.Interface
}

func newClients(cfg config.Config, version string, log hclog.Logger) (*clients, error) {
	restCfg, err := kube.RESTConfig(cfg.Kubeconfig, cfg.KubeContext)
	if err != nil {
		return nil, err
	}
	// A burst of new links costs a few writes each (finalizer, statuses, the halves' objects):
	// at 50/s, 1,000 links created together queued their status writes behind each other for
	// tens of seconds (make bench, +800 links). The API server's priority and fairness still
	// protects it from an agent; this only keeps the agent from throttling itself.
	restCfg.QPS, restCfg.Burst = 200, 400
	restCfg.UserAgent = "ecklink-agent/" + version
	cl := &clients{rest: restCfg}
	if cl.kube, cl.dyn, err = newKubeClients(restCfg); err != nil {
		return nil, err
	}
	if cl.watchKube, cl.watchDyn, err = newKubeClients(kube.WaitForAPIServer(restCfg, 2*time.Second, log.Named("kube"))); err != nil {
		return nil, err
	}
	if cl.pods, err = kube.NewClientset(bestEffort(restCfg)); err != nil {
		return nil, err // NewClientset's error names the client
	}
	if cl.probeDyn, err = dynamic.NewForConfig(bestEffort(restCfg)); err != nil {
		return nil, fmt.Errorf("failed to create the prober's dynamic client: %w", err)
	}
	if cfg.LeaderElection.Enabled {
		if cl.lease, err = newLeaseClient(restCfg, cfg.LeaderElection); err != nil {
			return nil, err
		}
	}
	return cl, nil
}

// bestEffort is c for a client of best-effort writes, with a rate budget of its own (20/s).
func bestEffort(c *rest.Config) *rest.Config {
	out := rest.CopyConfig(c)
	out.QPS, out.Burst, out.RateLimiter = 20, 40, nil
	return out
}

func newKubeClients(c *rest.Config) (kubernetes.Interface, dynamic.Interface, error) {
	kc, err := kube.NewClientset(c)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create dynamic client: %w", err)
	}
	return kc, dyn, nil
}

// newElastic builds the Elasticsearch client resolver and, unless the agent uses the elastic
// user, the controller of its own Elasticsearch users.
func (a *Agent) newElastic(cfg config.Config, cl *clients, log hclog.Logger) error {
	endpoints, err := parseEndpoints(cfg.ElasticsearchEndpoints)
	if err != nil {
		return fmt.Errorf("invalid elasticsearchEndpoints: %w", err)
	}
	if a.resolver, err = elastic.NewResolver(elastic.ResolverConfig{Kube: cl.kube, Endpoints: endpoints, Logger: log, UseElasticUser: cfg.Elasticsearch.UseElasticUser, Cached: a.cachedSecret}); err != nil {
		return err
	}
	if !cfg.Elasticsearch.UseElasticUser {
		if a.users, err = esuser.New(esuser.Config{Cache: a.cache, Kube: cl.kube, Dynamic: cl.dyn, Logger: log, Resync: cfg.ResyncInterval.Duration}); err != nil {
			return err
		}
	}
	return nil
}

// newHalves builds the exporter (the remote half) and the importer (the local half), which
// publish to peers through the Manager.
func (a *Agent) newHalves(cfg config.Config, cl *clients, crds *kube.Client, log hclog.Logger) error {
	outbox := protocol.NewOutbox(a.manager)
	var err error
	deps := halves.Deps{Environment: cfg.Environment, Cache: a.cache, Kube: cl.kube, Dynamic: cl.dyn, CRDs: crds, Elastic: a.resolver,
		Recorder: a.recorder, Metrics: a.metrics, Logger: log, Resync: cfg.ResyncInterval.Duration}
	if a.exporter, err = exporter.New(exporter.Config{
		Deps: deps, Outbox: outbox,
		SigningSyncDelay: cfg.Signing.SyncDelay.Duration, CertificateModel: cfg.CertificateModel.Enabled,
		LinksPerPeer: cfg.Limits.LinksPerPeer, LinksPerExport: cfg.Limits.LinksPerExport,
		Lag: exporter.LagConfig{CAGrace: cfg.PeerLag.CAGrace.Duration, TrustExpiry: cfg.PeerLag.TrustExpiry.Duration, KeyLead: cfg.PeerLag.KeyLead.Duration},
	}); err != nil {
		return err
	}
	a.importer, err = importer.New(importer.Config{
		Deps: deps, Outbox: outbox,
		AgentNamespace: cfg.Namespace,
		AgentUser:      !cfg.Elasticsearch.UseElasticUser,
		Signing:        signing.Config{CAValidity: cfg.Signing.CAValidity.Duration, LeafValidity: cfg.Signing.CertValidity.Duration},
		SigningTick:    signingTick(cfg),
		Pods:           cl.pods,
	})
	return err
}

// registerMetrics adds the build information and the agent CAs' expiry to the metrics.
func (a *Agent) registerMetrics(version string) {
	a.metrics.BuildInfo(version, iversion.Commit())
	a.metrics.AgentCAs(func() []metrics.AgentCA {
		var out []metrics.AgentCA
		for _, ca := range a.identity.CAs() {
			out = append(out, metrics.AgentCA{Role: ca.Role, NotAfter: ca.NotAfter})
		}
		return out
	})
}

// Run runs the agent until ctx ends or a part fails. Every replica loads the identity and
// serves the peer port, so it is ready and a Service may route to it; only the active replica
// (the leader, under leader election) acts, and a standby answers peers Unavailable until it
// takes over, so their dialers retry and reach the leader.
func (a *Agent) Run(ctx context.Context) error {
	defer a.recorder.Shutdown()
	if err := a.identity.Init(ctx); err != nil {
		return fmt.Errorf("failed to initialise identity: %w", err)
	}
	lis, err := net.Listen("tcp", a.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", a.cfg.ListenAddress, err)
	}
	gc := memtrim.SetGCPercent(os.Getenv)
	a.log.Info("agent serving", "environment", a.cfg.Environment, "listen_address", lis.Addr().String(), "version", a.version, "gc_percent", gc)
	close(a.ready)
	return task.Run(ctx,
		task.Named{Name: "health", Run: a.healthServer()},
		task.Named{Name: "config", Run: a.watchConfig(a.resolver)},
		task.Named{Name: "grpc", Run: func(ctx context.Context) error { return a.port.Serve(ctx, lis) }},
		task.Named{Name: "agent", Run: a.active()},
		task.Named{Name: "memtrim", Run: memtrim.New(memtrim.Config{Logger: a.log.Named("memtrim")}).Run},
	)
}

// active is the acting part: directly, or under leader election.
func (a *Agent) active() task.Task {
	if a.cfg.LeaderElection.Enabled {
		return a.runElected
	}
	return func(ctx context.Context) error {
		a.metrics.Leader(true)
		return a.runActive(ctx)
	}
}

// runActive runs everything that acts: informers, identity rotation, the stream, the
// controllers. Peers are served only once the informers have synced.
func (a *Agent) runActive(ctx context.Context) error {
	// Reload the identity: while this replica stood by, the leader may have rotated the CA, and
	// the Secret is the truth (this replica is now its only writer).
	if err := a.identity.Init(ctx); err != nil {
		return fmt.Errorf("failed to reload identity: %w", err)
	}
	// The learnt trust too: the leader before may have written newer bundles.
	a.peerTrust.Reset()
	if err := a.cache.Start(ctx); err != nil {
		return err
	}
	if err := a.tokens.Start(ctx); err != nil {
		return err
	}
	// The outbox holds every import before a stream opens, so the first Inventory is complete.
	a.importer.PublishImports(ctx)
	a.acting.Store(true)
	defer a.acting.Store(false)
	a.log.Info("agent active", "environment", a.cfg.Environment)
	tasks := []task.Named{
		{Name: "identity", Run: a.identity.Run},
		{Name: "dialer", Run: a.dialer.Run},
		{Name: "peers", Run: a.peers.Run},
		{Name: "exporter", Run: a.exporter.Run},
		{Name: "importer", Run: a.importer.Run},
		{Name: "trust", Run: a.trust.Run},
		{Name: "pairing", Run: a.joiner.Run},
	}
	if a.prober != nil {
		tasks = append(tasks, task.Named{Name: "probe", Run: a.prober.Run})
	}
	if a.users != nil {
		tasks = append(tasks, task.Named{Name: "esuser", Run: a.users.Run})
	}
	return task.Run(ctx, tasks...)
}

// healthServer serves /healthz (the process runs) and /readyz (this replica serves the peer
// port: a standby is ready too, and answers peers Unavailable).
func (a *Agent) healthServer() task.Task {
	return func(ctx context.Context) error {
		if a.cfg.MetricsAddress == "0" {
			<-ctx.Done()
			return ctx.Err()
		}
		srv := &http.Server{Addr: a.cfg.MetricsAddress, Handler: a.healthMux(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("failed to serve health: %w", err)
		}
		return ctx.Err()
	}
}

// healthMux serves /metrics, /healthz, /readyz and, with profiling on, Go's /debug/pprof/.
func (a *Agent) healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.Handler())
	if a.cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-a.ready:
			_, _ = w.Write([]byte("ok\n"))
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	})
	return mux
}

// streamCredentials checks live streams against the Peers' trust (identity.StreamChecker); the
// Manager is built before the peer controller it needs.
type streamCredentials struct{ a *Agent }

func (c streamCredentials) VerifyPeer(peer string, chain []*x509.Certificate, usage x509.ExtKeyUsage) error {
	return c.a.identity.StreamChecker(c.a.peers).VerifyPeer(peer, chain, usage)
}

func (c streamCredentials) RenewAt(peer string, local *x509.Certificate, chain []*x509.Certificate) (time.Time, string) {
	return c.a.identity.StreamChecker(c.a.peers).RenewAt(peer, local, chain)
}

// signingTick is how often the signing CA rotation advances: a minute, or a tenth of a short
// signing certificate lifetime (tests), at least a second.
func signingTick(cfg config.Config) time.Duration {
	tick := time.Minute
	if v := cfg.Signing.CertValidity.Duration / 10; v > 0 && v < tick {
		tick = max(v, time.Second)
	}
	return tick
}

// cachedSecret looks a Secret up in the informer cache: ECK's (the HTTP CA, the elastic user) or
// the agent's own (its Elasticsearch user), so that an Elasticsearch call costs no API read.
func (a *Agent) cachedSecret(ns, name string) (*corev1.Secret, bool) {
	if s, ok := a.cache.ECKSecret(ns, name); ok {
		return s, true
	}
	return a.cache.OwnSecret(ns, name)
}
