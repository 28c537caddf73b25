package certmodel

import (
	"context"
	"slices"
	"strings"
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

// certLink is west's Elasticsearch "logs" exported with the certificate model and imported by
// east's "ccs" under alias, in namespace ns of both environments.
type certLink struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
	// userCA is the CA of the ConfigMap a side's Elasticsearch names in
	// spec.transport.tls.certificateAuthorities ("user-cas"), if any.
	remoteUserCA, localUserCA string
	created                   time.Time
}

// options of a link's setup.
type options struct {
	version string
	// remoteUserCAs/localUserCAs: the side's Elasticsearch names a ConfigMap "user-cas" with a CA
	// of the user's; otherwise it names none, and the agent creates and wires its own.
	remoteUserCAs, localUserCAs bool
	// remoteClusterServer enables the remote cluster server on west (to switch to apiKey).
	remoteClusterServer bool
}

func setup(ctx context.Context, t *testing.T, ns, alias string, o options) *certLink {
	t.Helper()
	l := &certLink{remote: world.Clusters["west"], local: world.Clusters["east"], ns: ns, alias: alias}
	var err error
	if l.remoteUserCA, err = userCAs(ctx, l.remote, ns, o.remoteUserCAs); err != nil {
		t.Fatal(err)
	}
	if l.localUserCA, err = userCAs(ctx, l.local, ns, o.localUserCAs); err != nil {
		t.Fatal(err)
	}
	withCAs := func(yes bool) func(*unstructured.Unstructured) {
		return func(obj *unstructured.Unstructured) {
			if yes {
				_ = unstructured.SetNestedField(obj.Object, "user-cas", "spec", "transport", "tls", "certificateAuthorities", "configMapName")
			}
		}
	}
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: o.version,
		RemoteClusterServer: o.remoteClusterServer, Mutate: withCAs(o.remoteUserCAs)}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: o.version, Mutate: withCAs(o.localUserCAs)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.remote.Export(ctx, ns, "logs", "logs", l.remotePod.TransportAddress(), []string{"east"}, harness.CertificateModel); err != nil {
		t.Fatal(err)
	}
	l.created = time.Now()
	if _, err := l.local.Import(ctx, ns, alias, "ccs", alias, "west", ns, "logs", askCertificate); err != nil {
		t.Fatal(err)
	}
	return l
}

// askCertificate makes a RemoteCluster accept the certificate model (spec.model), without which
// east refuses west's certificate-model answer.
func askCertificate(rc *v1alpha1.RemoteCluster) { rc.Spec.Model = v1alpha1.SecurityModelCertificate }

// userCAs creates, when asked, the ConfigMap "user-cas" with a CA of the user's, before the
// Elasticsearch that names it (ECK stops reconciling its certificates while it is missing).
func userCAs(ctx context.Context, c *harness.Cluster, ns string, yes bool) (string, error) {
	if !yes {
		return "", nil
	}
	if err := c.Env.EnsureNamespace(ctx, ns); err != nil {
		return "", err
	}
	ca, err := harness.NewUserCA("user-ca-" + c.Name)
	if err != nil {
		return "", err
	}
	if _, err := c.Env.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "user-cas"},
		Data:       map[string]string{"ca.crt": "# the user's own CA\n" + string(ca)},
	}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	fps, err := harness.Fingerprints(ca)
	return fps[0], err
}

// connect waits for the link to be Ready and a probe to see it connected, and returns the probe.
func (l *certLink) connect(ctx context.Context, t *testing.T) *harness.Probe {
	t.Helper()
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	t.Cleanup(func() { probe.Stop() })
	if _, err := probe.WaitConnected(ctx, 90*time.Second); err != nil {
		rc, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		t.Fatalf("%v (%s); RemoteCluster status:%s", err, l.localPod.RemoteError(l.alias), harness.DescribeConditions(rc))
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	return probe
}

// ownCA is the current transport CA of a side's Elasticsearch.
func ownCA(ctx context.Context, c *harness.Cluster, ns, es string) (string, error) {
	fps, err := c.TransportCAs(ctx, ns, es)
	if err != nil {
		return "", err
	}
	return fps[0], nil
}

// trustConfigMap is the name of the ConfigMap holding a side's extra transport CAs.
func trustConfigMap(user string, es string) string {
	if user != "" {
		return "user-cas"
	}
	return es + "-ecklink-transport-ca"
}

// remoteTrust and localTrust return the fingerprints in each side's transport CA ConfigMap.
func (l *certLink) remoteTrust(ctx context.Context) (*corev1.ConfigMap, []string, error) {
	return l.remote.ConfigMapCAs(ctx, l.ns, trustConfigMap(l.remoteUserCA, "logs"))
}

func (l *certLink) localTrust(ctx context.Context) (*corev1.ConfigMap, []string, error) {
	return l.local.ConfigMapCAs(ctx, l.ns, trustConfigMap(l.localUserCA, "ccs"))
}

// waitFor polls cond until it holds (harness.WaitFor).
var waitFor = harness.WaitFor

// activeKeys are west's API keys of the link that are neither invalidated nor expired.
func (l *certLink) activeKeys() []esim.APIKeyInfo {
	var out []esim.APIKeyInfo
	for _, k := range l.remotePod.Node().APIKeys() {
		meta, _ := k.Metadata["ecklink"].(map[string]any)
		if meta != nil && meta["link"] == l.ns+"/ccs/"+l.alias && !k.Invalidated && !k.Expired(time.Now()) {
			out = append(out, k)
		}
	}
	return out
}

// aliases are the remote cluster aliases configured in east's Elasticsearch.
func (l *certLink) aliases() []string {
	var out []string
	for _, rc := range l.localPod.Node().RemoteClusters() {
		out = append(out, rc.Alias)
	}
	return out
}

// wiredTo is the ConfigMap an Elasticsearch names in spec.transport.tls.certificateAuthorities.
func wiredTo(ctx context.Context, c *harness.Cluster, ns, es string) (string, map[string]string, error) {
	obj, err := c.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(ns).Get(ctx, es, metav1.GetOptions{})
	if err != nil {
		return "", nil, err
	}
	name, _, _ := unstructured.NestedString(obj.Object, "spec", "transport", "tls", "certificateAuthorities", "configMapName")
	return name, obj.GetAnnotations(), nil
}

func short(fps []string) string {
	out := make([]string, len(fps))
	for i, fp := range fps {
		out[i] = fp[:12]
	}
	return "[" + strings.Join(out, " ") + "]"
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// requireNoDisconnects fails on any disconnected sample after the first connection.
func requireNoDisconnects(t *testing.T, r harness.Result) {
	t.Helper()
	t.Logf("probe: %d samples, %d connected, first connected at %s", r.Samples, r.Connected, r.FirstConnected.Format(time.TimeOnly))
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
}
