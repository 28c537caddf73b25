package pod_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestManualProcedure shows that the problem ecklink solves is real in the test bed: the seed's
// manual steps connect two environments, the connection breaks when ECK's rotated CA makes the
// copied CA expire, updating the copy repairs it, and invalidating the API key breaks it again.
func TestManualProcedure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real kube-apiservers and ECK")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	eck := testbed.ECKOptions{CACertValidity: 3 * time.Minute, CACertRotateBefore: 2 * time.Minute}
	envs, err := testbed.StartAll(ctx, testbed.Options{Name: "west", ECK: eck}, testbed.Options{Name: "east", ECK: eck})
	if err != nil {
		t.Fatal(err)
	}
	west, east := envs[0], envs[1]
	for _, e := range envs {
		t.Cleanup(func() { e.Stop(); _ = os.RemoveAll(e.Dir) })
	}

	// Remote: Elasticsearch with the remote cluster server; local: a plain one.
	if _, err := west.CreateElasticsearch(ctx, testbed.Elasticsearch{Namespace: "data", Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.CreateElasticsearch(ctx, testbed.Elasticsearch{Namespace: "apps", Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	remote := startPod(ctx, t, west, "data", "logs")
	local := startPod(ctx, t, east, "apps", "ccs")
	rc, lc := client(ctx, t, remote), client(ctx, t, local)

	// 1. Create a cross-cluster API key on the remote.
	var key struct{ ID, Encoded string }
	mustDo(ctx, t, rc, http.MethodPost, "/_security/cross_cluster/api_key",
		`{"name":"manual","access":{"search":[{"names":["logs-*"]}]}}`, http.StatusOK, &key)

	// 2. Copy the remote's transport CA.
	caSecret, err := west.WaitForSecret(ctx, "data", "logs-es-transport-certs-public", nil)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := testbed.FirstCertificate(caSecret.Data["ca.crt"])
	if err != nil {
		t.Fatal(err)
	}

	// 3. Local side: Secret, ConfigMap, and the Elasticsearch spec change (seed, "CA is private").
	if _, err := east.Kube.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "remote-api-keys"},
		Data:       map[string][]byte{"cluster.remote.west.credentials": []byte(key.Encoded)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Kube.CoreV1().ConfigMaps("apps").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "remote-ca"},
		Data:       map[string]string{"remote-cluster-ca.crt": string(caSecret.Data["ca.crt"])},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wireLocal(ctx, t, east)

	// 4. Proxy-mode remote cluster settings.
	mustDo(ctx, t, lc, http.MethodPut, "/_cluster/settings", fmt.Sprintf(
		`{"persistent":{"cluster":{"remote":{"west":{"mode":"proxy","proxy_address":%q,"server_name":"logs-es-remote-cluster.data.svc"}}}}}`,
		remote.RemoteClusterAddress()), http.StatusOK, nil)

	waitConnected(ctx, t, lc, local, true, 60*time.Second, "after the manual steps")

	// 5. ECK rotates the CA (same key); the stale copy works until the copied CA expires.
	if _, err := west.WaitForSecret(ctx, "data", "logs-es-transport-certs-public", func(s *corev1.Secret) bool {
		ca, err := testbed.FirstCertificate(s.Data["ca.crt"])
		return err == nil && ca.Fingerprint != copied.Fingerprint
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ECK rotated the remote CA; the copy expires at %s", copied.NotAfter.Format(time.RFC3339))
	if until := time.Until(copied.NotAfter) - 5*time.Second; until > 0 {
		select {
		case <-time.After(until):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		waitConnected(ctx, t, lc, local, true, 2*time.Second, "with the stale copy before it expires")
	}
	waitConnected(ctx, t, lc, local, false, time.Until(copied.NotAfter)+20*time.Second, "after the copied CA expired")
	t.Logf("disconnected as users see it: %s", local.RemoteError("west"))

	// 6. Updating the copy repairs the connection.
	current, err := west.Kube.CoreV1().Secrets("data").Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := east.Kube.CoreV1().ConfigMaps("apps").Get(ctx, "remote-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["remote-cluster-ca.crt"] = string(current.Data["ca.crt"])
	if _, err := east.Kube.CoreV1().ConfigMaps("apps").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitConnected(ctx, t, lc, local, true, 30*time.Second, "after updating the copy")

	// 7. Invalidating the API key breaks it again.
	mustDo(ctx, t, rc, http.MethodDelete, "/_security/api_key", fmt.Sprintf(`{"ids":[%q]}`, key.ID), http.StatusOK, nil)
	waitConnected(ctx, t, lc, local, false, 15*time.Second, "after invalidating the API key")
}

func startPod(ctx context.Context, t *testing.T, env *testbed.Environment, ns, name string) *pod.Pod {
	t.Helper()
	p, err := pod.Start(ctx, pod.Options{Kube: env.Kube, Dynamic: env.Dynamic, Namespace: ns, Name: name,
		IP: testbed.LoopbackIP(), RestartDelay: 2 * time.Second, VolumeSyncDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func client(ctx context.Context, t *testing.T, p *pod.Pod) *elasticsearch.Client {
	t.Helper()
	c, err := p.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wireLocal makes the seed's change to the local Elasticsearch resource.
func wireLocal(ctx context.Context, t *testing.T, env *testbed.Environment) {
	t.Helper()
	res := env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace("apps")
	// ECK writes the same resource (annotations, status): read, change and write again on a conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		es, err := res.Get(ctx, "ccs", metav1.GetOptions{})
		if err != nil {
			return err
		}
		_ = unstructured.SetNestedSlice(es.Object, []any{map[string]any{"secretName": "remote-api-keys"}}, "spec", "secureSettings")
		nodeSets, _, _ := unstructured.NestedSlice(es.Object, "spec", "nodeSets")
		ns0 := nodeSets[0].(map[string]any)
		ns0["config"] = map[string]any{"xpack": map[string]any{"security": map[string]any{"remote_cluster_client": map[string]any{"ssl": map[string]any{
			"enabled": true, "certificate_authorities": []any{"remote-certs/remote-cluster-ca.crt"},
		}}}}}
		ns0["podTemplate"] = map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "elasticsearch", "volumeMounts": []any{map[string]any{
				"name": "remote-ca", "mountPath": "/usr/share/elasticsearch/config/remote-certs"}}}},
			"volumes": []any{map[string]any{"name": "remote-ca", "configMap": map[string]any{"name": "remote-ca"}}},
		}}
		_ = unstructured.SetNestedSlice(es.Object, nodeSets, "spec", "nodeSets")
		_, err = res.Update(ctx, es, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustDo(ctx context.Context, t *testing.T, c *elasticsearch.Client, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Perform(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, resp.StatusCode, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// waitConnected polls GET /_remote/info until alias west has the wanted state.
func waitConnected(ctx context.Context, t *testing.T, c *elasticsearch.Client, p *pod.Pod, want bool, within time.Duration, when string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var info map[string]struct {
			Connected bool `json:"connected"`
		}
		mustDo(ctx, t, c, http.MethodGet, "/_remote/info", "", http.StatusOK, &info)
		if info["west"].Connected == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: connected=%v after %s, want %v (last error: %s)", when, info["west"].Connected, within, want, p.RemoteError("west"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
