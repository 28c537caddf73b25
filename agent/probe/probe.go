// Package probe checks each link's data path from the agent itself, periodically: the TLS
// handshake the local Elasticsearch makes with the remote cluster server (the proxy address,
// the server name, verified with the CA ConfigMap's bundle; internal/tlsprobe). From inside
// the cluster the path can differ from the operator's laptop (NetworkPolicies, NAT, DNS), as
// Linkerd's gateway probes and Cilium's in-agent troubleshooting show. The verdict goes to the
// RemoteCluster's ProbeSucceeded condition and to the metrics ecklink_link_probe_success and
// ecklink_link_probe_duration_seconds.
//
// Links that share a data path (the same local Elasticsearch, address and server name) share one
// handshake per round: 1,000 links from 10 Elasticsearch to one remote cost 10 handshakes.
//
// Links of the certificate model are not probed: their path is the transport port with mutual
// TLS and another trust file. A verdict that does not change is written again at most every
// Refresh (with its latest duration), so a thousand links cost a few status writes a second at
// most.
package probe

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/internal/tlsprobe"
)

// Cache is what the prober reads (the informer cache). The RemoteClusters are the informer's
// own (not copies): the prober only reads them.
type Cache interface {
	RemoteClustersShared() []*v1alpha1.RemoteCluster
	OwnConfigMap(ns, name string) (*corev1.ConfigMap, bool)
}

// Config configures a Prober.
type Config struct {
	Cache   Cache
	CRDs    *kube.Client
	Metrics *metrics.Metrics
	Logger  hclog.Logger
	// Interval between two probes of a link (required).
	Interval time.Duration
	// Timeout bounds one probe (default: a third of Interval, at most 10s).
	Timeout time.Duration
	// Workers probe links side by side (default 4).
	Workers int
	// Refresh is how often an unchanged verdict is written again (default 10m).
	Refresh time.Duration
	Now     func() time.Time
}

// Prober probes every link periodically.
type Prober struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	written map[string]written // RemoteCluster namespace/name -> last write
}

type written struct {
	key string // status, reason and message without the duration
	at  time.Time
	// ns, es and alias are the link's metric labels.
	ns, es, alias string
}

// New returns a Prober for cfg.
func New(cfg Config) (*Prober, error) {
	if cfg.Cache == nil || cfg.CRDs == nil || cfg.Interval <= 0 {
		return nil, fmt.Errorf("failed to create prober: Cache, CRDs and a positive Interval are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval/3, 10*time.Second)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Prober{cfg: cfg, log: cfg.Logger.Named("probe"), written: map[string]written{}}, nil
}

// Run probes every Interval until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Round(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// target is one link to probe.
type target struct {
	rc     *v1alpha1.RemoteCluster
	t      tlsprobe.Target
	cm     string
	noCA   string // why the CA bundle is unusable, if it is
	result tlsprobe.Result
}

// path names what a probe checks: the address, the server name and the CA ConfigMap. Links of
// one local Elasticsearch to the same remote share it (one handshake per round for all of them).
func (tg *target) path() string {
	return tg.t.Address + "|" + tg.t.ServerName + "|" + tg.rc.Namespace + "/" + tg.cm
}

// Round probes every distinct data path once and reports the verdict to each link on it.
func (p *Prober) Round(ctx context.Context) {
	targets := p.targets()
	byPath := map[string][]*target{}
	var paths []string
	for _, tg := range targets {
		k := tg.path()
		if _, ok := byPath[k]; !ok {
			paths = append(paths, k)
		}
		byPath[k] = append(byPath[k], tg)
	}
	work := make(chan []*target)
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for same := range work {
				r := tlsprobe.Probe(ctx, same[0].t, p.cfg.Timeout, p.cfg.Now())
				for _, tg := range same {
					tg.result = r
				}
			}
		})
	}
	for _, k := range paths {
		work <- byPath[k]
	}
	close(work)
	wg.Wait()
	seen := map[string]bool{}
	for _, tg := range targets {
		seen[tg.rc.Namespace+"/"+tg.rc.Name] = true
	}
	p.reportAll(ctx, targets)
	if ctx.Err() != nil {
		return
	}
	p.forgetOthers(ctx, seen)
}

// writers is how many verdicts are reported side by side. Most rounds write nothing (a verdict
// is written when it changes, or every Refresh); the first round after links connect writes one
// status per link, which one at a time took over a minute at 1,000 links.
const writers = 8

// reportAll reports each target's verdict, writers at a time (errgroup's limit, as the
// importer's status writes).
func (p *Prober) reportAll(ctx context.Context, targets []*target) {
	var writes errgroup.Group
	writes.SetLimit(writers)
	for _, tg := range targets {
		if ctx.Err() != nil {
			break
		}
		writes.Go(func() error { p.report(ctx, tg); return nil })
	}
	_ = writes.Wait() // report logs its own failures
}

// bundle is a CA ConfigMap's certificates, or why they are unusable.
type bundle struct {
	cas  []*x509.Certificate
	noCA string
}

// targets lists the links to probe: API-key model, with credentials (a proxy address). Each CA
// ConfigMap is parsed once per round.
func (p *Prober) targets() []*target {
	var out []*target
	bundles := map[string]bundle{}
	for _, rc := range p.cfg.Cache.RemoteClustersShared() {
		if rc.DeletionTimestamp != nil || rc.Status.ProxyAddress == "" || rc.Status.Model == v1alpha1.SecurityModelCertificate {
			continue
		}
		tg := &target{rc: rc, cm: wiring.CAConfigMapName(rc.Spec.ElasticsearchRef.Name),
			t: tlsprobe.Target{Address: rc.Status.ProxyAddress, ServerName: rc.Status.ServerName}}
		b, ok := bundles[rc.Namespace+"/"+tg.cm]
		if !ok {
			b = p.bundle(rc.Namespace, tg.cm)
			bundles[rc.Namespace+"/"+tg.cm] = b
		}
		tg.t.CAs, tg.noCA = b.cas, b.noCA
		out = append(out, tg)
	}
	return out
}

func (p *Prober) bundle(ns, name string) bundle {
	cm, ok := p.cfg.Cache.OwnConfigMap(ns, name)
	if !ok {
		return bundle{noCA: "ConfigMap " + name + " does not exist yet"}
	}
	cas, err := pemutil.ParseCertificates([]byte(cm.Data[wiring.CAFileKey]), pemutil.Limits{})
	if err != nil {
		return bundle{noCA: fmt.Sprintf("ConfigMap %s holds no usable CA: %v", name, err)}
	}
	return bundle{cas: cas}
}

// condition turns a verdict into the ProbeSucceeded condition; the duration is kept apart so
// that a verdict is not written again for its duration alone.
func (tg *target) condition() (status metav1.ConditionStatus, reason, msg, took string) {
	r, t := tg.result, tg.t
	took = fmt.Sprintf(" (%s)", r.Duration.Round(time.Millisecond))
	sn := t.ServerName
	if sn == "" {
		sn = "no server name"
	}
	switch r.Step {
	case tlsprobe.StepOK:
		return metav1.ConditionTrue, v1alpha1.ReasonHandshakeVerified, fmt.Sprintf(
			"TLS handshake with %s as %s: the certificate chains to ConfigMap %s and names the server", t.Address, sn, tg.cm), took
	case tlsprobe.StepDial:
		return metav1.ConditionFalse, v1alpha1.ReasonProxyUnreachable, fmt.Sprintf(
			"the agent cannot connect to %s from this cluster: %v (check NetworkPolicies, egress and DNS)", t.Address, r.Err), took
	case tlsprobe.StepHandshake:
		return metav1.ConditionFalse, v1alpha1.ReasonHandshakeFailed, fmt.Sprintf(
			"TLS handshake with %s as %s failed: %v (is it the remote cluster server, port 9443?)", t.Address, sn, r.Err), took
	case tlsprobe.StepTrust:
		why := r.Err.Error()
		if tg.noCA != "" {
			why = tg.noCA
		}
		return metav1.ConditionFalse, v1alpha1.ReasonCertificateUntrusted, fmt.Sprintf(
			"the certificate presented at %s (issuer %s) does not verify with ConfigMap %s: %s", t.Address, issuer(r), tg.cm, why), took
	default:
		return metav1.ConditionFalse, v1alpha1.ReasonServerNameMismatch, fmt.Sprintf(
			"%s is not among the names of the certificate presented at %s: %s", sn, t.Address, strings.Join(r.Chain[0].DNSNames, ", ")), took
	}
}

func issuer(r tlsprobe.Result) string {
	if len(r.Chain) == 0 {
		return "unknown"
	}
	return r.Chain[0].Issuer.String()
}

// report exports the verdict and writes the condition when it changed, or when it was last
// written Refresh ago.
func (p *Prober) report(ctx context.Context, tg *target) {
	rc := tg.rc
	key := rc.Namespace + "/" + rc.Name
	p.cfg.Metrics.Probe(rc.Namespace, rc.Spec.ElasticsearchRef.Name, rc.Spec.Alias, tg.result.OK(), tg.result.Duration)
	status, reason, msg, took := tg.condition()
	ck := string(status) + "|" + reason + "|" + msg
	now := p.cfg.Now()
	p.mu.Lock()
	last, ok := p.written[key]
	p.mu.Unlock()
	if ok && last.key == ck && now.Sub(last.at) < p.cfg.Refresh {
		return
	}
	if !ok && holds(rc, status, reason, msg) {
		// Written before this process started (a restart): not written again for its
		// duration alone; the refresh counts from now.
		p.mu.Lock()
		p.written[key] = written{key: ck, at: now, ns: rc.Namespace, es: rc.Spec.ElasticsearchRef.Name, alias: rc.Spec.Alias}
		p.mu.Unlock()
		return
	}
	if !ok || last.key != ck {
		p.log.Info("link probe", "remote_cluster", key, "step", tg.result.Step, "reason", reason, "duration", tg.result.Duration)
	}
	_, err := p.cfg.CRDs.RemoteClusters().UpdateStatus(ctx, rc, func(x *v1alpha1.RemoteCluster) error {
		kube.Set(x, kube.NewCondition(x, v1alpha1.ConditionProbeSucceeded, status, reason, msg+took))
		return nil
	})
	if err != nil && !apierrors.IsNotFound(err) {
		p.log.Warn("failed to report a link probe", "remote_cluster", key, "error", err)
		return
	}
	p.mu.Lock()
	p.written[key] = written{key: ck, at: now, ns: rc.Namespace, es: rc.Spec.ElasticsearchRef.Name, alias: rc.Spec.Alias}
	p.mu.Unlock()
}

// holds says whether rc's ProbeSucceeded condition already is this verdict, whatever duration
// its message ends with.
func holds(rc *v1alpha1.RemoteCluster, status metav1.ConditionStatus, reason, msg string) bool {
	c := meta.FindStatusCondition(rc.Status.Conditions, v1alpha1.ConditionProbeSucceeded)
	if c == nil || c.Status != status || c.Reason != reason || !strings.HasPrefix(c.Message, msg+" (") {
		return false
	}
	return strings.HasSuffix(c.Message, ")") && !strings.Contains(c.Message[len(msg)+2:], " ")
}

// forgetOthers drops the series and the condition of links no longer probed (deleted, or
// without credentials now).
func (p *Prober) forgetOthers(ctx context.Context, seen map[string]bool) {
	p.mu.Lock()
	var gone []string
	for key, w := range p.written {
		if !seen[key] {
			gone = append(gone, key)
			p.cfg.Metrics.ForgetProbe(w.ns, w.es, w.alias)
			delete(p.written, key)
		}
	}
	p.mu.Unlock()
	for _, key := range gone {
		ns, name, _ := strings.Cut(key, "/")
		rc, err := p.cfg.CRDs.RemoteClusters().Get(ctx, ns, name)
		if err != nil || rc.DeletionTimestamp != nil {
			continue
		}
		_, err = p.cfg.CRDs.RemoteClusters().UpdateStatus(ctx, rc, func(x *v1alpha1.RemoteCluster) error {
			kube.Remove(x, v1alpha1.ConditionProbeSucceeded)
			return nil
		})
		if err != nil && !apierrors.IsNotFound(err) {
			p.log.Warn("failed to drop a link's probe condition", "remote_cluster", key, "error", err)
		}
	}
}
