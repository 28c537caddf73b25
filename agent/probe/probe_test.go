package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/internal/pemutil"
)

func newCA(t *testing.T) testenv.Cert {
	t.Helper()
	return testenv.CA(t, "transport CA", time.Time{}, time.Time{})
}

// remoteClusterServer serves TLS like a remote cluster server, with a leaf of ca for name.
func remoteClusterServer(t *testing.T, ca testenv.Cert, name string) string {
	t.Helper()
	return countingServer(t, ca, name, &atomic.Int64{})
}

// countingServer is remoteClusterServer counting the connections it accepts.
func countingServer(t *testing.T, ca testenv.Cert, name string, accepted *atomic.Int64) string {
	t.Helper()
	leaf := testenv.New(t, testenv.Spec{CN: name, Serial: 2, DNSNames: []string{name}, Parent: &ca})
	return testenv.HandshakeServer(t, &tls.Config{Certificates: []tls.Certificate{leaf.TLS()}}, accepted)
}

type fakeCache struct {
	mu  sync.Mutex
	crd *kube.Client
	cms map[string]*corev1.ConfigMap
}

func (c *fakeCache) RemoteClustersShared() []*v1alpha1.RemoteCluster {
	l, _ := c.crd.RemoteClusters().List(context.Background(), "", metav1.ListOptions{})
	return l
}

func (c *fakeCache) OwnConfigMap(ns, name string) (*corev1.ConfigMap, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cm, ok := c.cms[ns+"/"+name]
	return cm, ok
}

func (c *fakeCache) setCA(certs ...*x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cms["apps/ccs-ecklink-remote-ca"] = &corev1.ConfigMap{Data: map[string]string{"ca.crt": string(pemutil.EncodeBundle(certs))}}
}

// TestProbe: the verdict of each step becomes the ProbeSucceeded condition and the metrics; an
// unchanged verdict is not written again before Refresh; a link without credentials any more
// loses both.
func TestProbe(t *testing.T) {
	ctx := context.Background()
	_, crds := fakeCRDs(t)
	ca, other := newCA(t), newCA(t)
	name := "logs-es-remote-cluster.data.svc"
	addr := remoteClusterServer(t, ca, name)
	addLink(t, crds, "west-logs", "ccs", "", "")
	setStatus := func(addr, serverName string) {
		t.Helper()
		cur, _ := crds.RemoteClusters().Get(ctx, "apps", "west-logs")
		setAddress(t, crds, cur, addr, serverName)
	}
	cache := &fakeCache{crd: crds, cms: map[string]*corev1.ConfigMap{}}
	m := metrics.New()
	now := time.Now()
	p, err := New(Config{Cache: cache, CRDs: crds, Metrics: m, Interval: 30 * time.Second, Timeout: 2 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	verdict := func() *metav1.Condition {
		t.Helper()
		p.Round(ctx)
		cur, _ := crds.RemoteClusters().Get(ctx, "apps", "west-logs")
		return meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionProbeSucceeded)
	}
	dead := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := ln.Addr().String()
		_ = ln.Close()
		return a
	}()
	notTLS := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		testenv.ServeConns(t, ln, func(c net.Conn) {
			_, _ = c.Write([]byte("not tls\r\n\r\n"))
			_ = c.Close()
		})
		return ln.Addr().String()
	}()

	if c := verdict(); c != nil {
		t.Fatalf("a link without credentials was probed: %+v", c)
	}
	setStatus(addr, name)
	for _, tc := range []struct {
		step    string
		prepare func()
		status  metav1.ConditionStatus
		reason  string
		contain string
	}{
		{"no CA ConfigMap yet", func() {}, metav1.ConditionFalse, v1alpha1.ReasonCertificateUntrusted, "ccs-ecklink-remote-ca does not exist"},
		{"verified", func() { cache.setCA(ca.Cert) }, metav1.ConditionTrue, v1alpha1.ReasonHandshakeVerified, "chains to ConfigMap ccs-ecklink-remote-ca"},
		{"stale CA copy", func() { cache.setCA(other.Cert) }, metav1.ConditionFalse, v1alpha1.ReasonCertificateUntrusted, "does not verify with ConfigMap"},
		{"wrong server name", func() { cache.setCA(ca.Cert); setStatus(addr, "logs-es-http.data.svc") }, metav1.ConditionFalse, v1alpha1.ReasonServerNameMismatch, name},
		{"unreachable", func() { setStatus(dead, name) }, metav1.ConditionFalse, v1alpha1.ReasonProxyUnreachable, "cannot connect to " + dead},
		{"not the remote cluster server", func() { setStatus(notTLS, name) }, metav1.ConditionFalse, v1alpha1.ReasonHandshakeFailed, "TLS handshake with " + notTLS + " as " + name + " failed"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			tc.prepare()
			c := verdict()
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.contain) {
				t.Fatalf("ProbeSucceeded = %+v, want %s %s ~%q", c, tc.status, tc.reason, tc.contain)
			}
			want := 0.0
			if tc.status == metav1.ConditionTrue {
				want = 1
			}
			if got, ok := value(t, m, "ecklink_link_probe_success"); !ok || got != want {
				t.Fatalf("ecklink_link_probe_success = %v (%v), want %v", got, ok, want)
			}
			if d, ok := value(t, m, "ecklink_link_probe_duration_seconds"); !ok || d <= 0 {
				t.Fatalf("ecklink_link_probe_duration_seconds = %v (%v)", d, ok)
			}
		})
	}

	t.Run("an unchanged verdict is written again only after Refresh", func(t *testing.T) {
		setStatus(addr, name)
		first := verdict()
		rv := func() string {
			cur, _ := crds.RemoteClusters().Get(ctx, "apps", "west-logs")
			return cur.ResourceVersion
		}
		before := rv()
		verdict()
		if rv() != before {
			t.Fatal("an unchanged verdict was written again")
		}
		now = now.Add(11 * time.Minute)
		// The write happens; the API skips it when the duration reads the same.
		if again := verdict(); again.Status != first.Status || !p.written["apps/west-logs"].at.Equal(now) {
			t.Fatal("the verdict was not written again after Refresh")
		}
	})
	t.Run("a link without credentials loses its verdict", func(t *testing.T) {
		setStatus("", "")
		if c := verdict(); c != nil {
			t.Fatalf("ProbeSucceeded kept: %+v", c)
		}
		if _, ok := value(t, m, "ecklink_link_probe_success"); ok {
			t.Fatal("the probe series of a link no longer probed were kept")
		}
	})
}

// value returns the value of the one series of a metric family, and whether there is one.
func value(t *testing.T, m *metrics.Metrics, name string) (float64, bool) {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			for _, l := range mf.GetMetric()[0].GetLabel() {
				if l.GetName() == "es_namespace" && l.GetValue() != "apps" {
					t.Fatalf("es_namespace = %q", l.GetValue())
				}
			}
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestProbeOnePerPath: links of one local Elasticsearch to the same address and server name
// share one handshake per round and each gets the verdict; a link of another Elasticsearch (its
// own CA ConfigMap, missing here) to the same address is probed apart and gets its own verdict.
// A restarted prober does not write the verdicts its predecessor wrote.
func TestProbeOnePerPath(t *testing.T) {
	ctx := context.Background()
	dyn, crds := fakeCRDs(t)
	ca := newCA(t)
	name := "logs-es-remote-cluster.data.svc"
	var accepted atomic.Int64
	addr := countingServer(t, ca, name, &accepted)
	links := map[string]string{"west-a": "ccs", "west-b": "ccs", "west-c": "ccs", "west-d": "other"}
	for alias, es := range links {
		addLink(t, crds, alias, es, addr, name)
	}
	cache := &fakeCache{crd: crds, cms: map[string]*corev1.ConfigMap{}}
	cache.setCA(ca.Cert) // apps/ccs-ecklink-remote-ca only
	p, err := New(Config{Cache: cache, CRDs: crds, Metrics: metrics.New(), Interval: 30 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.Round(ctx)
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections for 4 links on 2 paths, want 2", n)
	}
	for alias, es := range links {
		cur, _ := crds.RemoteClusters().Get(ctx, "apps", alias)
		c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionProbeSucceeded)
		want := v1alpha1.ReasonHandshakeVerified
		if es == "other" {
			want = v1alpha1.ReasonCertificateUntrusted
		}
		if c == nil || c.Reason != want {
			t.Errorf("%s (of %s): ProbeSucceeded %v, want reason %s", alias, es, c, want)
		}
	}

	// A restarted agent's first round finds the same verdicts written: no status write.
	statusWrites := func() int {
		n := 0
		for _, a := range dyn.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	for alias := range links { // as written by the previous process, with another duration
		cur, _ := crds.RemoteClusters().Get(ctx, "apps", alias)
		if _, err := crds.RemoteClusters().UpdateStatus(ctx, cur, func(x *v1alpha1.RemoteCluster) error {
			c := meta.FindStatusCondition(x.Status.Conditions, v1alpha1.ConditionProbeSucceeded)
			c.Message = c.Message[:strings.LastIndex(c.Message, " (")] + " (999ms)"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := statusWrites()
	restarted, err := New(Config{Cache: cache, CRDs: crds, Metrics: metrics.New(), Interval: 30 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	restarted.Round(ctx)
	if n := statusWrites() - before; n != 0 {
		t.Errorf("a restarted prober wrote %d unchanged verdicts again, want 0", n)
	}
}

// fakeCRDs is a fake dynamic client and the agent's client of the CRDs over it.
func fakeCRDs(t *testing.T) (*dynamicfake.FakeDynamicClient, *kube.Client) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: dyn})
	if err != nil {
		t.Fatal(err)
	}
	return dyn, crds
}

// addLink creates RemoteCluster apps/alias, a link of local Elasticsearch es to west, whose
// status names addr and serverName.
func addLink(t *testing.T, crds *kube.Client, alias, es, addr, serverName string) {
	t.Helper()
	rc := &v1alpha1.RemoteCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: alias},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: es}, Alias: alias, Peer: "west"}}
	rc, err := crds.RemoteClusters().Create(t.Context(), rc)
	if err != nil {
		t.Fatal(err)
	}
	setAddress(t, crds, rc, addr, serverName)
}

// setAddress sets the proxy address and server name the status of rc gives its link.
func setAddress(t *testing.T, crds *kube.Client, rc *v1alpha1.RemoteCluster, addr, serverName string) {
	t.Helper()
	if _, err := crds.RemoteClusters().UpdateStatus(t.Context(), rc, func(x *v1alpha1.RemoteCluster) error {
		x.Status.ProxyAddress, x.Status.ServerName = addr, serverName
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestProbeWritesSideBySide: the first round after many links connect writes one verdict per
// link, writers at a time (one after the other, 1,000 links took over a minute), and every one
// of them lands.
func TestProbeWritesSideBySide(t *testing.T) {
	ctx := context.Background()
	dyn, crds := fakeCRDs(t)
	ca := newCA(t)
	name := "logs-es-remote-cluster.data.svc"
	addr := remoteClusterServer(t, ca, name)
	const links = 3 * writers
	for i := range links {
		addLink(t, crds, fmt.Sprintf("west-%02d", i), "ccs", addr, name)
	}
	cache := &fakeCache{crd: crds, cms: map[string]*corev1.ConfigMap{}}
	cache.setCA(ca.Cert)
	c := fakekube.NewInflight()
	counted, err := kube.NewClient(kube.ClientConfig{Dynamic: fakekube.Counting(dyn, c)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Cache: cache, CRDs: counted, Metrics: metrics.New(), Interval: 30 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.Round(ctx)
	if n, most := c.Total(fakekube.Status), c.Max(fakekube.Status); n != links || most < 2 || most > writers {
		t.Errorf("status writes: %d in all, at most %d at once; want %d, between 2 and %d at once", n, most, links, writers)
	}
	for i := range links {
		cur, _ := crds.RemoteClusters().Get(ctx, "apps", fmt.Sprintf("west-%02d", i))
		if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionProbeSucceeded); c == nil || c.Reason != v1alpha1.ReasonHandshakeVerified {
			t.Errorf("west-%02d: ProbeSucceeded %v, want reason %s", i, c, v1alpha1.ReasonHandshakeVerified)
		}
	}
}
