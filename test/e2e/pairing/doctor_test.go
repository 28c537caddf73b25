package pairing

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// diagnosis is the part of agentctl doctor -o json the test reads.
type diagnosis struct {
	Healthy bool `json:"healthy"`
	Links   []struct {
		RemoteCluster string `json:"remoteCluster"`
		Failing       string `json:"failing"`
		Checks        []struct {
			Name, Result, Item, Detail, Fix string
		} `json:"checks"`
	} `json:"links"`
}

// TestDoctorNamesFaults: north pairs with east directly (agentctl pair); four links from east's
// exports each get one fault, and agentctl doctor names it: a wrong server name, an unreachable
// proxy address, an invalidated API key (the agents then repair these, and doctor --wait sees
// every check pass), and a stale remote CA. agentctl unpair then ends the pairing on both sides.
func TestDoctorNamesFaults(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	east, north := world.Clusters["east"], world.Clusters["north"]
	code, out, errOut := agentctl(ctx, t, "pair", "--context", "north", "--peer-context", "east", "--dry-run")
	if code != 0 || strings.Count(out, "kind: Peer") != 2 {
		t.Fatalf("pair --dry-run: exit %d: %s%s", code, out, errOut)
	}
	code, out, errOut = agentctl(ctx, t, "pair", "--context", "north", "--peer-context", "east")
	if code != 0 || !strings.Contains(out, "the stream is up") {
		t.Fatalf("pair: exit %d: %s%s", code, out, errOut)
	}
	unpaired := false
	t.Cleanup(func() {
		if !unpaired {
			agentctl(context.Background(), t, "unpair", "east", "--context", "north", "--peer-context", "east")
		}
	})

	const lns = "doctor"
	remote := startES(ctx, t, east, lns, "logs", true)
	remoteKey := startES(ctx, t, east, lns, "logs-key", true)
	local := startES(ctx, t, north, lns, "ccs", false)
	localCA := startES(ctx, t, north, lns, "ccs-ca", false)
	links := []struct {
		fault, es string
		remote    *pod.Pod
		localPod  *pod.Pod
	}{
		{"ca", "ccs-ca", remote, localCA},
		{"name", "ccs", remote, local},
		{"key", "ccs", remoteKey, local},
		{"addr", "ccs", remote, local},
	}
	for _, l := range links {
		esName := "logs"
		if l.remote == remoteKey {
			esName = "logs-key"
		}
		if _, err := east.Export(ctx, lns, "logs-"+l.fault, esName, l.remote.RemoteClusterAddress(), []string{"north"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := north.Import(ctx, lns, "east-"+l.fault, l.es, "east-"+l.fault, "east", lns, "logs-"+l.fault, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range links {
		connectAlias(ctx, t, north, l.localPod, lns, "east-"+l.fault)
	}
	doctorArgs := []string{"doctor", "--context", "north", "--peer-context", "east", "-o", "json",
		"--elasticsearch-endpoint", lns + "/ccs=" + local.HTTPURL(), "--elasticsearch-endpoint", lns + "/ccs-ca=" + localCA.HTTPURL(),
		"--peer-elasticsearch-endpoint", lns + "/logs=" + remote.HTTPURL(), "--peer-elasticsearch-endpoint", lns + "/logs-key=" + remoteKey.HTTPURL()}
	doctor := func(t *testing.T, args ...string) (int, diagnosis, string) {
		t.Helper()
		code, out, errOut := agentctl(ctx, t, append(doctorArgs, args...)...)
		var d diagnosis
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("doctor -o json: %v\n%s%s", err, out, errOut)
		}
		return code, d, errOut
	}
	code, d, _ := doctor(t)
	if code != 0 || !d.Healthy || len(d.Links) != 4 {
		t.Fatalf("healthy links: exit %d, %+v", code, d)
	}
	for _, c := range d.Links[0].Checks {
		if c.Result != "ok" {
			t.Errorf("check %s of a healthy link: %s: %s", c.Name, c.Result, c.Detail)
		}
	}

	// expectFault polls doctor on one link until it names want, then checks the item and detail.
	expectFault := func(t *testing.T, rc, want, item, detail string) {
		t.Helper()
		start := time.Now()
		var last diagnosis
		for {
			code, d, errOut := doctor(t, lns+"/"+rc, "-o", "json")
			last = d
			if code == 4 && len(d.Links) == 1 && d.Links[0].Failing == want {
				for _, c := range d.Links[0].Checks {
					if c.Name == want && (!strings.Contains(c.Item, item) || !strings.Contains(c.Detail, detail) || c.Fix == "") {
						t.Fatalf("%s: item %q, detail %q, fix %q; want item %q, detail %q", want, c.Item, c.Detail, c.Fix, item, detail)
					}
				}
				t.Logf("doctor named %s for %s after %s", want, rc, time.Since(start).Round(100*time.Millisecond))
				return
			}
			if time.Since(start) > 90*time.Second {
				t.Fatalf("doctor did not name %s within 90s: exit %d %+v %s", want, code, last, errOut)
			}
			time.Sleep(2 * time.Second)
		}
	}
	editExport := func(t *testing.T, name string, mutate func(*v1alpha1.ClusterExport)) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			x, err := east.CRDs.ClusterExports().Get(ctx, lns, name)
			if err != nil {
				return err
			}
			mutate(x)
			_, err = east.CRDs.ClusterExports().Update(ctx, x)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("wrong server name", func(t *testing.T) {
		editExport(t, "logs-name", func(x *v1alpha1.ClusterExport) { x.Spec.ServerName = "wrong.doctor.example" })
		expectFault(t, "east-name", "server-name", "server name wrong.doctor.example", "not among the SANs")
	})
	t.Run("unreachable proxy address", func(t *testing.T) {
		editExport(t, "logs-addr", func(x *v1alpha1.ClusterExport) { x.Spec.ProxyAddress = "127.0.0.1:1" })
		expectFault(t, "east-addr", "proxy-address", "proxy address 127.0.0.1:1", "connection refused")
	})
	t.Run("invalidated API key", func(t *testing.T) {
		rc, err := north.CRDs.RemoteClusters().Get(ctx, lns, "east-key")
		if err != nil || rc.Status.APIKey == nil {
			t.Fatalf("no applied key: %v", err)
		}
		// East's agent loses its way to that Elasticsearch, so it cannot replace the key.
		if err := east.SetElasticsearchEndpoint(lns, "logs-key", "https://127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the agent reloads its config file every 2s
		invalidate(ctx, t, remoteKey, rc.Status.APIKey.ID)
		expectFault(t, "east-key", "api-key", "API key "+rc.Status.APIKey.ID, "invalidated in Elasticsearch doctor/logs-key of east")
	})
	t.Run("the agents repair what they own, and doctor --wait sees every check pass", func(t *testing.T) {
		editExport(t, "logs-name", func(x *v1alpha1.ClusterExport) { x.Spec.ServerName = "" })
		editExport(t, "logs-addr", func(x *v1alpha1.ClusterExport) { x.Spec.ProxyAddress = remote.RemoteClusterAddress() })
		if err := east.SetElasticsearchEndpoint(lns, "logs-key", remoteKey.HTTPURL()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		code, d, errOut := doctor(t, "--wait", "--timeout", "3m")
		if code != 0 || !d.Healthy {
			t.Fatalf("exit %d: %+v\n%s", code, d, errOut)
		}
		if !strings.Contains(errOut, "waiting for every check to pass") {
			t.Errorf("no progress lines:\n%s", errOut)
		}
		t.Logf("every check passes %s after the repairs", time.Since(start).Round(time.Second))
	})

	t.Run("stale remote CA", func(t *testing.T) {
		// North's agent is stopped while the CA copy goes stale, or it would repair it at once.
		north.Agent.Stop()
		ca, _, err := harness.NewAgentCA("stale")
		if err != nil {
			t.Fatal(err)
		}
		stale := string(pemutil.EncodeBundle([]*x509.Certificate{ca}))
		cmName := wiring.CAConfigMapName("ccs-ca")
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cm, err := north.Env.Kube.CoreV1().ConfigMaps(lns).Get(ctx, cmName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, k := range harness.CABundleKeys(cm) {
				cm.Data[k] = stale
			}
			_, err = north.Env.Kube.CoreV1().ConfigMaps(lns).Update(ctx, cm, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		expectFault(t, "east-ca", "remote-ca", "ConfigMap doctor/ccs-ca-ecklink-remote-ca key ca.crt", "issued by CN=logs-transport")
		restarted := time.Now()
		if err := north.Agent.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, 60*time.Second, "north's agent is back", func() (bool, string) { return heartbeatSince(ctx, north, "east", restarted) })
	})

	t.Run("status", func(t *testing.T) {
		code, out, errOut := agentctl(ctx, t, "status", "--context", "north")
		if code != 0 || !strings.Contains(out, "doctor/east-key") || !strings.Contains(out, "Environment north") {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
	})

	// The encoded API keys north applied, read before the unpairing removes them.
	var keys []string
	for _, es := range []string{"ccs", "ccs-ca"} {
		keys = append(keys, apiKeys(ctx, t, north, lns, es)...)
	}
	t.Run("unpair", func(t *testing.T) {
		leaf, err := north.AgentLeaf(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := agentctl(ctx, t, "unpair", "east", "--context", "north", "--peer-context", "east")
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		unpaired = true
		if err := harness.TryClientCertificate(east.Endpoint, leaf); err == nil {
			t.Fatal("east accepts north's certificate after unpair")
		}
		waitFor(ctx, t, 60*time.Second, "east invalidated every key it issued to north", func() (bool, string) {
			active := 0
			for _, p := range []*pod.Pod{remote, remoteKey} {
				for _, k := range p.Node().APIKeys() {
					if !k.Invalidated && !k.Expired(time.Now()) {
						active++
					}
				}
			}
			return active == 0, "active keys remain"
		})
		waitFor(ctx, t, 60*time.Second, "north removed the aliases", func() (bool, string) {
			return len(local.Node().RemoteClusters())+len(localCA.Node().RemoteClusters()) == 0, "aliases remain"
		})
	})
	requireHidden(ctx, t, nil, keys...)
}

func startES(ctx context.Context, t *testing.T, c *harness.Cluster, ns, name string, server bool) *pod.Pod {
	t.Helper()
	p, err := c.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: name, Version: "9.3.2", RemoteClusterServer: server})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// invalidate invalidates an API key through Elasticsearch's REST API, as an administrator would.
func invalidate(ctx context.Context, t *testing.T, p *pod.Pod, id string) {
	t.Helper()
	c, err := p.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"ids": []string{id}})
	res, err := c.Security.InvalidateAPIKey(strings.NewReader(string(body)), c.Security.InvalidateAPIKey.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.IsError() {
		t.Fatalf("invalidate: %s", res.String())
	}
}
