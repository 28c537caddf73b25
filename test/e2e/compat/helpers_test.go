package compat

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// link is an export of Elasticsearch "logs" in remote, imported by Elasticsearch "ccs" of local
// under alias, all in namespace ns.
type link struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
	probe               *harness.Probe
}

func newLink(ctx context.Context, t *testing.T, remote, local, ns, alias string) *link {
	t.Helper()
	l := &link{remote: world.Clusters[remote], local: world.Clusters[local], ns: ns, alias: alias}
	var err error
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.remote.Export(ctx, ns, "logs", "logs", l.remotePod.RemoteClusterAddress(), []string{local}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.local.Import(ctx, ns, alias, "ccs", alias, remote, ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	return l
}

// connect waits for the RemoteCluster to be Ready and starts sampling _remote/info every second.
func (l *link) connect(ctx context.Context, t *testing.T) {
	t.Helper()
	l.probe = harness.StartProbe(context.Background(), l.localPod, l.alias, time.Second)
	if _, err := l.probe.WaitConnected(ctx, 2*time.Minute); err != nil {
		rc, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	l.waitReady(ctx, t)
}

func (l *link) waitReady(ctx context.Context, t *testing.T) *v1alpha1.RemoteCluster {
	t.Helper()
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 2*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue) && rc.Status.APIKey != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// keyID is the API key the local side applied.
func (l *link) keyID(ctx context.Context, t *testing.T) string {
	t.Helper()
	return l.waitReady(ctx, t).Status.APIKey.ID
}

// keys are the link's API keys in the remote Elasticsearch that are still valid.
func (l *link) activeKeys() []string {
	var out []string
	for _, k := range l.remotePod.Node().APIKeys() {
		meta, ok := k.Metadata["ecklink"].(map[string]any)
		if ok && meta["link"] == l.ns+"/ccs/"+l.alias && !k.Invalidated && !k.Expired(time.Now()) {
			out = append(out, k.ID)
		}
	}
	slices.Sort(out)
	return out
}

// transportCA is the remote's current transport CA.
func (l *link) transportCA(ctx context.Context) (testbed.CAInfo, error) {
	s, err := l.remote.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return testbed.CAInfo{}, err
	}
	return testbed.FirstCertificate(s.Data["ca.crt"])
}

// localTrusts reports whether the local CA ConfigMap holds ca.
func (l *link) localTrusts(ctx context.Context, ca testbed.CAInfo) bool {
	cm, err := l.local.Env.Kube.CoreV1().ConfigMaps(l.ns).Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return pemutil.Fingerprint(c) == ca.Fingerprint })
}

// requireNoDisconnects fails on any disconnected sample since the link first connected.
func (l *link) requireNoDisconnects(t *testing.T, when string) {
	t.Helper()
	r := l.probe.Result()
	t.Logf("%s %s: %d samples, %d connected", l.alias, when, r.Samples, r.Connected)
	for _, s := range r.Disconnected {
		t.Errorf("%s: disconnected sample at %s (%s): %s", l.alias, s.At.Format(time.RFC3339Nano), when, s.Reason)
	}
}

// peerVersion is the version local's Peer of remote reports.
func peerVersion(ctx context.Context, c *harness.Cluster, peer string) string {
	p, err := c.CRDs.Peers().Get(ctx, harness.AgentNamespace, peer)
	if err != nil {
		return ""
	}
	return p.Status.PeerVersion
}

// ecklinkObjects lists what of ecklink remains in an environment: its kinds, and the Secrets and
// ConfigMaps its agent labels as its own.
func ecklinkObjects(ctx context.Context, t *testing.T, c *harness.Cluster) []string {
	t.Helper()
	var out []string
	peers, err := c.CRDs.Peers().List(ctx, "", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		out = append(out, "Peer "+p.Namespace+"/"+p.Name)
	}
	rcs, _ := c.CRDs.RemoteClusters().List(ctx, "", metav1.ListOptions{})
	for _, rc := range rcs {
		out = append(out, "RemoteCluster "+rc.Namespace+"/"+rc.Name)
	}
	exps, _ := c.CRDs.ClusterExports().List(ctx, "", metav1.ListOptions{})
	for _, x := range exps {
		out = append(out, "ClusterExport "+x.Namespace+"/"+x.Name)
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by in (ecklink,ecklink-agent)"}
	secrets, _ := c.Env.Kube.CoreV1().Secrets("").List(ctx, sel)
	for _, s := range secrets.Items {
		out = append(out, "Secret "+s.Namespace+"/"+s.Name)
	}
	cms, _ := c.Env.Kube.CoreV1().ConfigMaps("").List(ctx, sel)
	for _, cm := range cms.Items {
		out = append(out, "ConfigMap "+cm.Namespace+"/"+cm.Name)
	}
	return out
}
