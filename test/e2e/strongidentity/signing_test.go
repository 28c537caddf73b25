package strongidentity

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/importer"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// exportStep is the link's strong identity step in the export's status ("" without).
func (l *link) exportStep(ctx context.Context) string {
	exp, err := l.remote.CRDs.ClusterExports().Get(ctx, l.ns, "logs")
	if err != nil {
		return "error: " + err.Error()
	}
	for _, x := range exp.Status.Links {
		if x.Alias == l.alias && x.LocalElasticsearch == "ccs" {
			return x.StrongIdentity
		}
	}
	return ""
}

// waitStep waits until the export reports step for the link, and returns how long that took
// and the steps seen on the way (polled every 100ms, so short ones may be missed).
func (l *link) waitStep(ctx context.Context, t *testing.T, step string, within time.Duration) (time.Duration, []string) {
	t.Helper()
	start := time.Now()
	var seen []string
	for {
		cur := l.exportStep(ctx)
		if len(seen) == 0 || seen[len(seen)-1] != cur {
			seen = append(seen, cur)
		}
		if cur == step {
			return time.Since(start), seen
		}
		if time.Since(start) > within {
			rc, _ := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
			t.Fatalf("export link step %q, want %q after %s (seen %q); RemoteCluster status:%s", cur, step, within, seen, harness.DescribeConditions(rc))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inOrder fails unless the steps seen follow order (some may be missing: polled).
func inOrder(t *testing.T, seen, order []string) {
	t.Helper()
	i := 0
	for _, s := range seen {
		for i < len(order) && order[i] != s {
			i++
		}
		if i == len(order) {
			t.Fatalf("steps %q are not in the order %q", seen, order)
		}
	}
}

// keyIdentities are the certificate_identity values of the link's active keys ("" for none).
func (l *link) keyIdentities() []string {
	var out []string
	for _, k := range l.activeKeys() {
		s := ""
		if k.CertificateIdentity != nil {
			s = *k.CertificateIdentity
		}
		out = append(out, s)
	}
	return out
}

// subject is the signing subject east's agent uses for ccs in ns.
func subject(ns string) string { return "CN=ccs." + ns + ".east,OU=ecklink-signing" }

// requireNoDisconnect fails the test if the probe recorded a disconnected sample.
func requireNoDisconnect(t *testing.T, probe *harness.Probe, what string) {
	t.Helper()
	r := probe.Result()
	if len(r.Disconnected) > 0 {
		t.Fatalf("%s: %d of %d samples disconnected, first at %s: %s", what, len(r.Disconnected), r.Samples,
			r.Disconnected[0].At.Format(time.RFC3339Nano), r.Disconnected[0].Reason)
	}
	t.Logf("%s: %d samples, all connected", what, r.Samples)
}

// TestRequiredConnects: a 9.3 link whose export requires strong identity from the start
// connects with signed requests and a key bound to the consumer's signing subject; a second
// Elasticsearch holding a copy of the key and another certificate of the same signing CA is
// refused; signing certificate renewals and a signing CA rotation keep the link connected,
// sampled every second.
func TestRequiredConnects(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	l := setup(ctx, t, "si-req", "9.3.2", "9.3.2", v1alpha1.StrongIdentityRequired)
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	defer probe.Stop()
	t.Logf("connected %s after the import", l.connect(ctx, t, probe).Round(time.Millisecond))
	_, seen := l.waitStep(ctx, t, "Enforced", 90*time.Second)
	t.Logf("steps seen: %q", seen)
	want := signing.IdentityPattern(subject(l.ns))
	if ids := l.keyIdentities(); len(ids) != 1 || ids[0] != want {
		t.Fatalf("key identities %q, want [%q]", ids, want)
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.HasCondition(rc, v1alpha1.ConditionStrongIdentity, metav1.ConditionTrue)
	}); err != nil {
		t.Fatal(err)
	}
	steady := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	defer steady.Stop()
	if _, err := steady.WaitConnected(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("copied key with another certificate is refused", func(t *testing.T) {
		l.thief(ctx, t)
	})

	t.Run("renewal and CA rotation keep it connected", func(t *testing.T) {
		start := time.Now()
		firstCA, firstCert := l.signingState(ctx, t)
		renewed, rotated := false, false
		for !(renewed && rotated) {
			if time.Since(start) > signingCAValidity+time.Minute {
				t.Fatalf("after %s: certificate renewed %v, CA rotated %v", time.Since(start).Round(time.Second), renewed, rotated)
			}
			time.Sleep(time.Second)
			ca, cert := l.signingState(ctx, t)
			if cert.SerialNumber.Cmp(firstCert.SerialNumber) != 0 && !renewed {
				renewed = true
				t.Logf("signing certificate renewed after %s", time.Since(start).Round(time.Second))
			}
			if pemutil.Fingerprint(ca) != pemutil.Fingerprint(firstCA) && cert.CheckSignatureFrom(ca) == nil && !rotated {
				rotated = true
				t.Logf("signing CA rotated and the certificate reissued by the new CA after %s", time.Since(start).Round(time.Second))
			}
		}
		// Past the kubelet's delay: the pod signs with the new certificate.
		time.Sleep(5 * time.Second)
		requireNoDisconnect(t, steady, "since enforced")
	})
}

// signingState is east's active signing CA and ccs's current signing certificate.
func (l *link) signingState(ctx context.Context, t *testing.T) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	caSecret, err := l.local.Env.Kube.CoreV1().Secrets(harness.AgentNamespace).Get(ctx, importer.SigningCASecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pemutil.ParseCertificates(caSecret.Data[signing.KeyCACert], pemutil.Limits{})
	if err != nil || len(ca) != 1 {
		t.Fatalf("signing CA: %v", err)
	}
	sec, err := l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, wiring.SigningSecretName("ccs"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pemutil.ParseCertificates(sec.Data[corev1.TLSCertKey], pemutil.Limits{})
	if err != nil || len(cert) != 1 {
		t.Fatalf("signing certificate: %v", err)
	}
	return ca[0], cert[0]
}

// thief runs a second Elasticsearch in east that holds a valid copy of the link's API key and
// the remote CA, and signs with a certificate of east's signing CA for another subject (as a
// cluster of the same environment could obtain): west must refuse it.
func (l *link) thief(ctx context.Context, t *testing.T) {
	kube := l.local.Env.Kube
	creds, err := kube.CoreV1().Secrets(l.ns).Get(ctx, wiring.CredentialsSecretName("ccs"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caSecret, err := kube.CoreV1().Secrets(harness.AgentNamespace).Get(ctx, importer.SigningCASecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := signing.Load(signing.Config{Environment: "east", CAValidity: signingCAValidity, LeafValidity: signingCertValidity}, caSecret.Data)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := auth.Issue(auth.Subject(l.ns, "thief"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string][]byte{
		"thief-credentials": {wiring.CredentialsKey(l.alias): creds.Data[wiring.CredentialsKey(l.alias)]},
		"thief-signing":     {"tls.crt": certPEM, "tls.key": keyPEM},
	} {
		if _, err := kube.CoreV1().Secrets(l.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: l.ns}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	thief, err := l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: l.ns, Name: "thief", Version: "9.3.2", Mutate: func(obj *unstructured.Unstructured) {
		_ = unstructured.SetNestedSlice(obj.Object, []any{map[string]any{"secretName": "thief-credentials"}}, "spec", "secureSettings")
		nodeSets, _, _ := unstructured.NestedSlice(obj.Object, "spec", "nodeSets")
		ns := nodeSets[0].(map[string]any)
		cfg := ns["config"].(map[string]any)
		cfg["xpack.security.remote_cluster_client.ssl.enabled"] = true
		cfg["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = []any{"/usr/share/elasticsearch/config/remote-ca/ca.crt"}
		ns["podTemplate"] = map[string]any{"spec": map[string]any{
			"volumes": []any{
				map[string]any{"name": "remote-ca", "configMap": map[string]any{"name": wiring.CAConfigMapName("ccs")}},
				map[string]any{"name": "thief-signing", "secret": map[string]any{"secretName": "thief-signing"}},
			},
			"containers": []any{map[string]any{"name": "elasticsearch", "volumeMounts": []any{
				map[string]any{"name": "remote-ca", "mountPath": "/usr/share/elasticsearch/config/remote-ca", "readOnly": true},
				map[string]any{"name": "thief-signing", "mountPath": "/usr/share/elasticsearch/config/thief-signing", "readOnly": true},
			}}},
		}}
		_ = unstructured.SetNestedSlice(obj.Object, nodeSets, "spec", "nodeSets")
	}})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := l.remote.CRDs.ClusterExports().Get(ctx, l.ns, "logs")
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"persistent":{"cluster.remote.%[1]s.mode":"proxy","cluster.remote.%[1]s.proxy_address":%[2]q,"cluster.remote.%[1]s.server_name":%[3]q,`+
		`"cluster.remote.%[1]s.signing.certificate":"/usr/share/elasticsearch/config/thief-signing/tls.crt","cluster.remote.%[1]s.signing.key":"/usr/share/elasticsearch/config/thief-signing/tls.key"}}`,
		l.alias, exp.Status.ProxyAddress, exp.Status.ServerName)
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, resp, err := put(ctx, thief.Client, "/_cluster/settings", body)
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thief settings: %d %s %v", status, resp, err)
		}
		time.Sleep(time.Second)
	}
	probe := harness.StartProbe(ctx, thief, l.alias, time.Second)
	defer probe.Stop()
	time.Sleep(10 * time.Second)
	r := probe.Result()
	if r.Connected != 0 || r.Samples < 5 {
		t.Fatalf("thief: %d of %d samples connected", r.Connected, r.Samples)
	}
	reason := thief.RemoteError(l.alias)
	if !strings.Contains(reason, "thief") && !strings.Contains(strings.ToLower(reason), "identity") {
		t.Logf("note: refusal reason does not name the identity: %s", reason)
	}
	t.Logf("thief refused in all %d samples: %s", r.Samples, reason)
}

// put sends a JSON body to an esim pod's REST API.
func put(ctx context.Context, client func(context.Context) (*elasticsearch.Client, error), path, body string) (int, string, error) {
	c, err := client(ctx)
	if err != nil {
		return 0, "", err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Perform(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestEnableDisableOnALiveLink: a connected 9.3 link whose export starts to require strong
// identity gets it in the order that keeps it connected (trust, signing, identity) and loses it
// in the reverse order when the export no longer requires it: not one disconnected sample,
// sampled every second, and the same key all along.
func TestEnableDisableOnALiveLink(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	l := setup(ctx, t, "si-live", "9.3.2", "9.3.2", "")
	probe := harness.StartProbe(ctx, l.localPod, l.alias, time.Second)
	defer probe.Stop()
	l.connect(ctx, t, probe)
	before := l.activeKeys()
	if len(before) != 1 || before[0].CertificateIdentity != nil {
		t.Fatalf("want 1 active key without identity, got %+v", before)
	}

	l.setMode(ctx, t, v1alpha1.StrongIdentityRequired)
	took, seen := l.waitStep(ctx, t, "Enforced", 2*time.Minute)
	t.Logf("enforced %s after strongIdentity Required, steps seen %q", took.Round(time.Millisecond), seen)
	inOrder(t, seen, []string{"", "TrustPending", "SigningPending", "Enforced"})
	want := signing.IdentityPattern(subject(l.ns))
	if ids := l.keyIdentities(); len(ids) != 1 || ids[0] != want {
		t.Fatalf("key identities %q, want [%q]", ids, want)
	}
	time.Sleep(3 * time.Second)
	requireNoDisconnect(t, probe, "enabling")

	l.setMode(ctx, t, v1alpha1.StrongIdentityDisabled)
	took, seen = l.waitStep(ctx, t, "", 2*time.Minute)
	t.Logf("strong identity off %s after strongIdentity Disabled, steps seen %q", took.Round(time.Millisecond), seen)
	inOrder(t, seen, []string{"Enforced", "IdentityClearing", "SigningStopping", "TrustReleasing", ""})
	if ids := l.keyIdentities(); len(ids) != 1 || ids[0] != "" {
		t.Fatalf("key identities %q, want none", ids)
	}
	cm, err := l.remote.Env.Kube.CoreV1().ConfigMaps(l.ns).Get(ctx, wiring.SigningCAConfigMapName("logs"), metav1.GetOptions{})
	if err == nil && cm.Data[wiring.CAFileKey] != "" {
		t.Fatalf("west still trusts signing CAs: %v", cm.Data)
	}
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.Condition(rc, v1alpha1.ConditionStrongIdentity) == nil
	})
	if err != nil {
		t.Fatalf("StrongIdentity condition still present: %v%s", err, harness.DescribeConditions(rc))
	}
	time.Sleep(3 * time.Second)
	requireNoDisconnect(t, probe, "enabling and disabling")
	if after := l.activeKeys(); len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("want the same single key, got %+v (before %s)", after, before[0].ID)
	}
}
