// Package pod binds an esim node to one ECK-managed Elasticsearch resource of a test-bed
// environment. It shows the node exactly what an Elasticsearch pod of that resource would see,
// derived from the same Kubernetes objects: ECK's HTTP certificate, the file realm and file roles
// ECK aggregates (users with bcrypt hashes, users_roles, roles.yml), the effective
// configuration (ECK's defaults under the user's nodeSet config), mounted ConfigMaps and Secrets
// (visible after the kubelet's sync delay), and the keystore ECK builds from spec.secureSettings
// (taking effect when ECK would roll the pod, modelled as a delay, or on reload where ES and ECK
// allow it). It serves the REST API, a remote cluster server (the 9443 role) and a remote cluster
// client whose `connected` comes from real TLS handshakes.
package pod

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/test/esim"
)

// Options configure a Pod.
type Options struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Namespace string
	// Name of the Elasticsearch resource.
	Name string
	// IP to listen on, e.g. "127.0.0.5"; each pod should have its own loopback address.
	IP string
	// Ports; 0 picks a free one. Defaults would be 9200, 9443 and 9300 in a real pod.
	HTTPPort, RemoteClusterPort int
	// TransportPort is the transport port (the 9300 role, see transport.go).
	TransportPort int
	// RestartDelay models ECK's rolling restart: spec or keystore changes take effect this long
	// after they were written. Default 3s.
	RestartDelay time.Duration
	// VolumeSyncDelay is the kubelet's sync period (kubelet.go): mounted ConfigMaps and
	// Secrets change in the pod's files when the kubelet next syncs the pod. Default 1 minute,
	// as the kubelet's --sync-frequency; tests that need speed set less.
	VolumeSyncDelay time.Duration
	// Kubelet tunes the rest of the kubelet model (jitter, cache delay); its SyncPeriod is
	// VolumeSyncDelay.
	Kubelet Kubelet
	// NoPodObject leaves out the pod object (no pod update can sync the volumes early).
	NoPodObject bool
	// CheckInterval is how often remote connections are re-established and checked. Real ES
	// keeps sockets open; esim reconnects, so it reports false as soon as a new connection would
	// fail. Default 1s.
	CheckInterval time.Duration
	// MaxDialsPerCheck caps the remotes one check dials (0: all of them, every check). Over the
	// cap, the remotes never dialled come first, then those dialled longest ago; the others keep
	// their last result. Where ES keeps a socket per remote open, esim opens a new TLS connection
	// per remote and check: at the bench's hundreds of remotes per pod that costs the machine
	// more than the agents measured. With a cap each remote is re-verified every
	// ceil(remotes/cap) checks instead of every check.
	MaxDialsPerCheck int
	// Resolve maps a host of a proxy address (e.g. a Service DNS name) to a dialable host.
	Resolve func(host string) string
	Logger  hclog.Logger
}

// Pod is a running simulated Elasticsearch pod.
type Pod struct {
	opts Options
	log  hclog.Logger
	node *esim.Node
	view *volumeView
	// kubelet models the kubelet's syncs of the pod's volumes (kubelet.go).
	kubelet *kubeletState

	httpLn, rcsLn net.Listener
	transportLn   net.Listener
	http          httpServing
	calls         callCounter
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	mu          sync.Mutex
	running     podSpec
	keystore    map[string][]byte
	keyHash     string
	pendingAt   time.Time
	pendingHash string
	recheck     bool
	changedAt   time.Time
	startTime   time.Time
	remote      map[string]remoteResult
	rcsCert     *certCache
	httpCert    *certCache
	esObj       *esState
	ready       chan struct{}
	readyOnce   sync.Once
	secureData  map[string][]byte // current <es>-es-secure-settings content (not delayed)
	realmHash   string            // of the file realm the node has loaded
	// license is the type and status a test set (SetLicense), kept across restarts.
	license [2]string
	// fileState is the file-based settings the node processed (filesettings.go).
	fileState fileSettingsState
	// restarts counts rolling restarts; reloads counts in-place secure settings reloads.
	restarts, reloads int
}

// Start starts the pod: it waits until ECK created the certificates and the file realm, then
// serves HTTPS and the remote cluster server.
func Start(ctx context.Context, opts Options) (*Pod, error) {
	if opts.Kube == nil || opts.Dynamic == nil || opts.Namespace == "" || opts.Name == "" || opts.IP == "" {
		return nil, errors.New("invalid options: Kube, Dynamic, Namespace, Name and IP are required")
	}
	if opts.RestartDelay == 0 {
		opts.RestartDelay = 3 * time.Second
	}
	opts.Kubelet.SyncPeriod = opts.VolumeSyncDelay
	opts.Kubelet.setDefaults()
	if opts.CheckInterval == 0 {
		opts.CheckInterval = time.Second
	}
	if opts.Resolve == nil {
		opts.Resolve = func(h string) string { return h }
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	p := &Pod{
		opts:     opts,
		log:      opts.Logger.Named("esim").With("elasticsearch", opts.Namespace+"/"+opts.Name),
		kubelet:  newKubeletState(opts.Kubelet, time.Now()),
		remote:   map[string]remoteResult{},
		rcsCert:  &certCache{},
		httpCert: &certCache{},
		esObj:    &esState{},
		ready:    make(chan struct{}),
	}
	p.view = newVolumeView(p.kubelet)
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if err := p.watch(runCtx); err != nil {
		cancel()
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(runCtx)
	}()
	select {
	case <-p.ready:
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("elasticsearch %s/%s: ECK objects not ready: %w", opts.Namespace, opts.Name, ctx.Err())
	}
	if err := p.listen(runCtx); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.listenTransport(runCtx); err != nil {
		p.Stop()
		return nil, err
	}
	if !opts.NoPodObject {
		p.mu.Lock()
		nodeSet := p.running.NodeSet
		p.mu.Unlock()
		if err := p.watchPodObject(runCtx, nodeSet); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// Node is the simulated node (for tests that inspect its state).
func (p *Pod) Node() *esim.Node { return p.node }

// SetLicense sets the license of the pod's cluster (type and status, see esim.Node.SetLicense);
// it holds across restarts, as the license lives in the cluster state.
func (p *Pod) SetLicense(typ, status string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.node != nil {
		if err := p.node.SetLicense(typ, status); err != nil {
			return err
		}
	}
	p.license = [2]string{typ, status}
	return nil
}

// HTTPURL is the REST endpoint, e.g. https://127.0.0.5:9200.
func (p *Pod) HTTPURL() string { return "https://" + p.httpLn.Addr().String() }

// RemoteClusterAddress is the host:port of the remote cluster server.
func (p *Pod) RemoteClusterAddress() string { return p.rcsLn.Addr().String() }

// StartTime is when the pod last (re)started.
func (p *Pod) StartTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startTime
}

// Stop stops serving and watching.
func (p *Pod) Stop() {
	p.cancel()
	for _, l := range []net.Listener{p.httpLn, p.rcsLn, p.transportLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	p.wg.Wait()
}

// loop applies delayed changes and re-checks remote connections.
func (p *Pod) loop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastCheck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p.kubelet.tick(now)
			p.reconcile(now)
			p.mu.Lock()
			recheck := p.recheck
			p.recheck = false
			p.mu.Unlock()
			if p.node != nil && (recheck || now.Sub(lastCheck) >= p.opts.CheckInterval) {
				lastCheck = now
				p.checkRemotes(ctx, now)
			}
		}
	}
}

func listenOn(ip string, port int) (net.Listener, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s:%d: %w", ip, port, err)
	}
	return l, nil
}
