package faults

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/esim"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// link is west's Elasticsearch "logs" exported to east, imported by east's "ccs" under alias,
// in namespace ns of both environments.
type link struct {
	remote, local       *harness.Cluster
	remotePod, localPod *pod.Pod
	ns, alias           string
}

// newLink creates both Elasticsearch resources with their pods, the export and the
// RemoteCluster.
func newLink(ctx context.Context, t *testing.T, ns, alias string, export func(*v1alpha1.ClusterExport)) *link {
	t.Helper()
	l := prepareLink(ctx, t, ns, alias, export)
	l.importIt(ctx, t)
	return l
}

// prepareLink creates everything but the RemoteCluster.
func prepareLink(ctx context.Context, t *testing.T, ns, alias string, export func(*v1alpha1.ClusterExport)) *link {
	t.Helper()
	l := &link{remote: world.Clusters["west"], local: world.Clusters["east"], ns: ns, alias: alias}
	var err error
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.remote.Export(ctx, ns, "logs", "logs", l.remotePod.RemoteClusterAddress(), []string{"east"}, export); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *link) importIt(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := l.local.Import(ctx, l.ns, l.alias, "ccs", l.alias, "west", l.ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
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

// rc reads the link's RemoteCluster.
func (l *link) rc(ctx context.Context) (*v1alpha1.RemoteCluster, error) {
	return l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
}

// connect waits until the link's RemoteCluster is Ready and a probe sees it connected.
func (l *link) connect(ctx context.Context, t *testing.T, within time.Duration) *harness.Probe {
	t.Helper()
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	t.Cleanup(func() { probe.Stop() })
	if _, err := probe.WaitConnected(ctx, within); err != nil {
		rc, _ := l.rc(ctx)
		t.Fatalf("%v; RemoteCluster status:%s", err, harness.DescribeConditions(rc))
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, within, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	return probe
}

// requireNoLeakedKey waits until the link holds exactly one live key on the remote, the one in
// effect in the local keystore (RemoteCluster status.apiKey): every other key it ever had is
// invalidated. It returns the live key.
func (l *link) requireNoLeakedKey(ctx context.Context, t *testing.T, within time.Duration) esim.APIKeyInfo {
	t.Helper()
	var live esim.APIKeyInfo
	waitFor(ctx, t, within, "exactly one live key, the one in effect", func() (bool, string) {
		rc, err := l.rc(ctx)
		if err != nil {
			return false, err.Error()
		}
		active := l.activeKeys()
		inEffect := ""
		if rc.Status.APIKey != nil {
			inEffect = rc.Status.APIKey.ID
		}
		if len(active) != 1 || active[0].ID != inEffect {
			return false, fmt.Sprintf("in effect %q; keys:%s", inEffect, describeKeys(l.keys()))
		}
		live = active[0]
		return true, ""
	})
	return live
}

// waitFor polls cond until it holds (harness.WaitFor).
var waitFor = harness.WaitFor

func describeKeys(keys []esim.APIKeyInfo) string {
	out := ""
	for _, k := range keys {
		out += fmt.Sprintf(" [%s invalidated=%v created=%s]", k.ID, k.Invalidated, k.Creation.Format("15:04:05.000"))
	}
	return out
}

// setPeerEndpoints changes the endpoints of Peer peer in c.
func setPeerEndpoints(ctx context.Context, c *harness.Cluster, peer string, endpoints []string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.CRDs.Peers().Get(ctx, harness.AgentNamespace, peer)
		if err != nil {
			return err
		}
		p.Spec.Endpoints = endpoints
		_, err = c.CRDs.Peers().Update(ctx, p)
		return err
	})
}

// transportCA reads the first CA of west's current transport CA bundle for the link.
func (l *link) transportCA(ctx context.Context) (testbed.CAInfo, error) {
	s, err := l.remote.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		return testbed.CAInfo{}, err
	}
	return testbed.FirstCertificate(s.Data["ca.crt"])
}

func (l *link) localSecret(ctx context.Context) (*corev1.Secret, error) {
	return l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "ccs-ecklink-remote-credentials", metav1.GetOptions{})
}

func (l *link) localConfigMap(ctx context.Context) (*corev1.ConfigMap, error) {
	return l.local.Env.Kube.CoreV1().ConfigMaps(l.ns).Get(ctx, "ccs-ecklink-remote-ca", metav1.GetOptions{})
}

// localTrusts reports whether the local CA ConfigMap holds the CA with fingerprint fp.
func (l *link) localTrusts(ctx context.Context, fp string) bool {
	cm, err := l.localConfigMap(ctx)
	if err != nil {
		return false
	}
	certs, err := pemutil.ParseCertificates([]byte(cm.Data["ca.crt"]), pemutil.Limits{})
	if err != nil {
		return false
	}
	for _, c := range certs {
		if pemutil.Fingerprint(c) == fp {
			return true
		}
	}
	return false
}

// deleteLink removes the RemoteCluster and the export and waits until both are gone, so that a
// later scenario's failpoints or counts see only its own link.
func (l *link) deleteLink(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := l.local.CRDs.RemoteClusters().Delete(ctx, l.ns, l.alias); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitFor(ctx, t, 60*time.Second, "RemoteCluster "+l.ns+"/"+l.alias+" finalized", func() (bool, string) {
		_, err := l.rc(ctx)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	waitFor(ctx, t, 60*time.Second, "keys of "+l.linkID()+" invalidated", func() (bool, string) {
		return len(l.activeKeys()) == 0, describeKeys(l.activeKeys())
	})
}

var retryInPattern = regexp.MustCompile(`retry_in=([0-9.]+[a-zµ]+)`)

// lastRetryDelay returns the last "retry_in" the agent logged after offset (bytes into its log)
// for lines containing marker.
func lastRetryDelay(log string, marker string) time.Duration {
	var last time.Duration
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		if m := retryInPattern.FindStringSubmatch(line); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil {
				last = d
			}
		}
	}
	return last
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

var esGVR = eck.ElasticsearchGVR

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	return unstructured.NestedSlice(obj, fields...)
}
