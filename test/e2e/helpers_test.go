package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/esim"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// link is one export in a remote environment imported by a local one, with its pods.
type link struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
}

// setupLink creates an Elasticsearch on each side (namespace ns; "logs" remote, "ccs" local),
// an export of "logs" granted to the local environment and a RemoteCluster under alias.
func setupLink(ctx context.Context, t *testing.T, remoteEnv, localEnv, ns, alias string, export func(*v1alpha1.ClusterExport), rc func(*v1alpha1.RemoteCluster)) *link {
	t.Helper()
	return setupLinkWith(ctx, t, remoteEnv, localEnv, ns, alias, export, rc, nil)
}

// setupLinkWith is setupLink with the local pod's options changed by localPod.
func setupLinkWith(ctx context.Context, t *testing.T, remoteEnv, localEnv, ns, alias string, export func(*v1alpha1.ClusterExport), rc func(*v1alpha1.RemoteCluster), localPod func(*pod.Options)) *link {
	t.Helper()
	return setupLinkLocal(ctx, t, remoteEnv, localEnv, ns, alias, export, rc, testbed.Elasticsearch{Version: "9.3.2"}, localPod)
}

// setupLinkLocal is setupLinkWith with the local Elasticsearch given (its namespace and name
// are set here).
func setupLinkLocal(ctx context.Context, t *testing.T, remoteEnv, localEnv, ns, alias string, export func(*v1alpha1.ClusterExport), rc func(*v1alpha1.RemoteCluster), localES testbed.Elasticsearch, localPod func(*pod.Options)) *link {
	t.Helper()
	l := &link{remote: world.Clusters[remoteEnv], local: world.Clusters[localEnv], ns: ns, alias: alias}
	var err error
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	localES.Namespace, localES.Name = ns, "ccs"
	if l.localPod, err = l.local.ElasticsearchWith(ctx, localES, localPod); err != nil {
		t.Fatal(err)
	}
	if _, err := l.remote.Export(ctx, ns, "logs", "logs", l.remotePod.RemoteClusterAddress(), []string{localEnv}, export); err != nil {
		t.Fatal(err)
	}
	if _, err := l.local.Import(ctx, ns, alias, "ccs", alias, remoteEnv, ns, "logs", rc); err != nil {
		t.Fatal(err)
	}
	return l
}

// linkID is the link's name in key metadata.
func (l *link) linkID() string { return l.ns + "/ccs/" + l.alias }

// keys returns the link's API keys in the remote Elasticsearch, oldest first.
func (l *link) keys() []esim.APIKeyInfo {
	var out []esim.APIKeyInfo
	for _, k := range l.remotePod.Node().APIKeys() {
		if meta, ok := k.Metadata["ecklink"].(map[string]any); ok && meta["link"] == l.linkID() {
			out = append(out, k)
		}
	}
	return out
}

// activeKeys are the link's keys that are neither invalidated nor expired.
func (l *link) activeKeys() []esim.APIKeyInfo {
	return slices.DeleteFunc(l.keys(), func(k esim.APIKeyInfo) bool { return k.Invalidated || k.Expired(time.Now()) })
}

// waitFor polls cond until it holds (harness.WaitFor).
var waitFor = harness.WaitFor

// connect waits for the link's RemoteCluster to be Ready and a probe to see it connected.
func (l *link) connect(ctx context.Context, t *testing.T) *harness.Probe {
	t.Helper()
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	t.Cleanup(func() { probe.Stop() })
	if _, err := probe.WaitConnected(ctx, 2*time.Minute); err != nil {
		rc, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	return probe
}

// requireNoDisconnects fails on any disconnected sample after the first connection.
func requireNoDisconnects(t *testing.T, r harness.Result) {
	t.Helper()
	t.Logf("probe: %d samples, %d connected, first connected at %s", r.Samples, r.Connected, r.FirstConnected.Format(time.RFC3339))
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
}

// transportCA reads the remote's current transport CA.
func (l *link) transportCA(ctx context.Context) (testbed.CAInfo, error) {
	s, err := l.remote.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return testbed.CAInfo{}, err
	}
	return testbed.FirstCertificate(s.Data["ca.crt"])
}

// localSecret and localConfigMap are the agent's objects for the local Elasticsearch.
func (l *link) localSecret(ctx context.Context) (*corev1.Secret, error) {
	return l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "ccs-ecklink-remote-credentials", metav1.GetOptions{})
}

func (l *link) localConfigMap(ctx context.Context) (*corev1.ConfigMap, error) {
	return l.local.Env.Kube.CoreV1().ConfigMaps(l.ns).Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
}

// remoteSettings returns the local Elasticsearch's remote cluster aliases.
func (l *link) remoteAliases() []string {
	var out []string
	for _, rc := range l.localPod.Node().RemoteClusters() {
		out = append(out, rc.Alias)
	}
	return out
}

func describeKeys(keys []esim.APIKeyInfo) string {
	out := ""
	for _, k := range keys {
		out += fmt.Sprintf(" [%s invalidated=%v expires=%v]", k.ID, k.Invalidated, k.Expiration)
	}
	return out
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	return unstructured.NestedSlice(obj, fields...)
}
