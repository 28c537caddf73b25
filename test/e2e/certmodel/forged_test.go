package certmodel

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim/pod"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// forger is the fake peer that plays a forging exporter.
const forger = "mallory"

// transportTrust is what makes up east's transport trust for ccs: the ConfigMaps the agent
// wrote, the Elasticsearch resource's transport CA setting and ECK's bundle.
type transportTrust struct {
	agentConfigMaps []string // names of the agent's ConfigMaps in the namespace
	wiredTo         string   // spec.transport.tls.certificateAuthorities.configMapName
	wiring          string   // the agent's transport CA wiring annotation
	eckBundle       []string // fingerprints in ccs-es-transport-certs-public
}

func readTransportTrust(ctx context.Context, t *testing.T, c *harness.Cluster, ns string) transportTrust {
	t.Helper()
	var tt transportTrust
	cms, err := c.Env.Kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=ecklink"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		tt.agentConfigMaps = append(tt.agentConfigMaps, cm.Name)
	}
	name, ann, err := wiredTo(ctx, c, ns, "ccs")
	if err != nil {
		t.Fatal(err)
	}
	tt.wiredTo, tt.wiring = name, ann["ecklink.io/transport-ca-wiring"]
	if tt.eckBundle, err = c.TransportCAs(ctx, ns, "ccs"); err != nil {
		t.Fatal(err)
	}
	return tt
}

// untouched fails unless tt shows no transport trust beyond ccs's own CA, and none of forged.
func (tt transportTrust) untouched(t *testing.T, when string, forged []string) {
	t.Helper()
	if len(tt.agentConfigMaps) > 0 || tt.wiredTo != "" || tt.wiring != "" || len(tt.eckBundle) != 1 {
		t.Errorf("%s: east's transport trust is not ccs's own CA alone: agent ConfigMaps %v, Elasticsearch names %q (wiring %q), ECK bundle %s",
			when, tt.agentConfigMaps, tt.wiredTo, tt.wiring, short(tt.eckBundle))
	}
	for _, fp := range forged {
		if contains(tt.eckBundle, fp) {
			t.Errorf("%s: ECK's transport bundle of ccs holds the forger's CA %s", when, fp[:12])
		}
	}
}

// TestForgedCertificateAnswer: a paired peer answers a RemoteCluster that asks for the API-key
// model (the default) with certificate-model credentials and a CA of its own, which on 0.1.0
// reached the consumer's transport trust. The credentials are refused with ModelNotAllowed, the
// RemoteCluster's condition names the reason and the peer, and east's transport trust stays as
// it was: no ConfigMap, no transport CA setting on the Elasticsearch, nothing new in ECK's
// ccs-es-transport-certs-public. A RemoteCluster that does ask for the certificate model refuses
// a CA bundle that is not exactly one self-signed CA.
func TestForgedCertificateAnswer(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	east, ns := world.Clusters["east"], "forged"
	fake, err := harness.NewFakePeer(ctx, forger)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.PairWith(ctx, east); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = east.CRDs.Peers().Delete(context.Background(), harness.AgentNamespace, forger) })
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "8.13.4"})
	if err != nil {
		t.Fatal(err)
	}
	for alias, mutate := range map[string]func(*v1alpha1.RemoteCluster){"by-default": nil, "asks-cert": askCertificate} {
		if _, err := east.Import(ctx, ns, alias, "ccs", alias, forger, "data", "logs", mutate); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = east.CRDs.RemoteClusters().Delete(context.Background(), ns, alias) })
	}
	stream, err := fake.Connect(ctx, east, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	requests := waitImports(ctx, t, stream, ns, "by-default", "asks-cert")
	if r := requests["by-default"]; r.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_API_KEY || len(r.GetTransportCaBundle()) != 0 {
		t.Errorf("import request of a default RemoteCluster: model %s, %d bytes of transport CA; want API_KEY and none", r.GetModel(), len(r.GetTransportCaBundle()))
	}
	if r := requests["asks-cert"]; r.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE || len(r.GetTransportCaBundle()) == 0 {
		t.Errorf("import request of a certificate RemoteCluster: model %s, %d bytes of transport CA; want CERTIFICATE with east's CA", r.GetModel(), len(r.GetTransportCaBundle()))
	}
	readTransportTrust(ctx, t, east, ns).untouched(t, "before any answer", nil)

	// 1. The forged answer to an apiKey link.
	own, err := harness.NewUserCA("mallory-transport")
	if err != nil {
		t.Fatal(err)
	}
	forged := credentials(ns, "by-default", local, own)
	a, err := stream.Update(ctx, &peerv1.Update{Resource: link.Resource(link.KindCredentials, linkID(ns, "by-default")), Sequence: 1,
		Payload: &peerv1.Update_Credentials{Credentials: forged}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forged certificate answer -> acked=%v %s: %s", a.Acked, a.Reason, a.Message)
	if a.Acked || a.Reason != v1alpha1.ReasonModelNotAllowed || !strings.Contains(a.Message, "spec.model apiKey") {
		t.Errorf("forged certificate answer: %+v, want a Nack ModelNotAllowed", a)
	}
	rc, err := east.WaitRemoteCluster(ctx, ns, "by-default", 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonModelNotAllowed
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := harness.Condition(rc, v1alpha1.ConditionTrustApplied); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != v1alpha1.ReasonModelNotAllowed || !strings.Contains(c.Message, "environment "+forger) {
		t.Errorf("TrustApplied = %+v, want False ModelNotAllowed naming environment %s", c, forger)
	} else {
		t.Logf("RemoteCluster by-default: TrustApplied=False %s: %s", c.Reason, c.Message)
	}

	// 2. A RemoteCluster that accepts the certificate model, answered with more than one CA.
	another := mustCA(t, "another")
	two := credentials(ns, "asks-cert", local, append(bytes.Clone(own), another...))
	a, err = stream.Update(ctx, &peerv1.Update{Resource: link.Resource(link.KindCredentials, linkID(ns, "asks-cert")), Sequence: 1,
		Payload: &peerv1.Update_Credentials{Credentials: two}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("two CAs for a certificate link -> acked=%v %s: %s", a.Acked, a.Reason, a.Message)
	if a.Acked || a.Reason != "InvalidCA" || !strings.Contains(a.Message, "exactly one self-signed CA certificate") {
		t.Errorf("two CAs for a certificate link: %+v, want a Nack InvalidCA", a)
	}

	// Nothing reached the transport trust, during a window long enough for a wrong change (the
	// importer resyncs every 5s; ECK copies a ConfigMap within seconds).
	time.Sleep(15 * time.Second)
	after := readTransportTrust(ctx, t, east, ns)
	fps, _ := harness.Fingerprints(append(bytes.Clone(own), another...))
	after.untouched(t, "after the forged answers", fps)
	if _, err := east.Env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, wiring.TransportCAConfigMapName("ccs"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s exists (err=%v)", wiring.TransportCAConfigMapName("ccs"), err)
	}
	t.Logf("east's transport trust after both answers: agent ConfigMaps %v, Elasticsearch names %q, ECK bundle %s",
		after.agentConfigMaps, after.wiredTo, short(after.eckBundle))
}

// waitImports waits for east's import requests of the aliases.
func waitImports(ctx context.Context, t *testing.T, s *harness.FakeStream, ns string, aliases ...string) map[string]*peerv1.ImportRequest {
	t.Helper()
	out := map[string]*peerv1.ImportRequest{}
	waitFor(ctx, t, time.Minute, "east's import requests", func() (bool, string) {
		for _, u := range s.Received() {
			for _, alias := range aliases {
				if u.GetResource() == link.Resource(link.KindImport, linkID(ns, alias)) && u.GetImportRequest() != nil {
					out[alias] = u.GetImportRequest()
				}
			}
		}
		return len(out) == len(aliases), fmt.Sprintf("%d of %d", len(out), len(aliases))
	})
	return out
}

func linkID(ns, alias string) link.ID {
	return link.ID{Namespace: ns, Elasticsearch: "ccs", Alias: alias}
}

// credentials are certificate-model credentials with bundle, as a forging exporter sends them.
func credentials(ns, alias string, local *pod.Pod, bundle []byte) *peerv1.Credentials {
	return &peerv1.Credentials{
		Link:  linkID(ns, alias).Proto(),
		Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, CaBundle: bundle,
		// Any address: nothing may get as far as dialing it.
		ProxyAddress: local.TransportAddress(), ServerName: "logs-es-transport.data.svc",
	}
}

func mustCA(t *testing.T, cn string) []byte {
	t.Helper()
	ca, err := harness.NewUserCA(cn)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestCertificateModelDisabled: an export with the certificate model on an agent whose setting
// certificateModel.enabled is off (east's) says so in its CertificateModelEnabled condition and
// is not Ready; a RemoteCluster that asks for it gets a refusal that says the same, and the
// exporting side's transport trust gains nothing.
func TestCertificateModelDisabled(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	east, west, ns := world.Clusters["east"], world.Clusters["west"], "gated"
	exported, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "8.13.4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "8.13.4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Export(ctx, ns, "logs", "logs", exported.TransportAddress(), []string{"west"}, harness.CertificateModel); err != nil {
		t.Fatal(err)
	}
	if _, err := west.Import(ctx, ns, "east-gated", "ccs", "east-gated", "east", ns, "logs", askCertificate); err != nil {
		t.Fatal(err)
	}
	exp, err := east.WaitClusterExport(ctx, ns, "logs", time.Minute, func(x *v1alpha1.ClusterExport) bool {
		c := harness.Condition(x, v1alpha1.ConditionCertificateModelEnabled)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonCertificateModelDisabled &&
			harness.HasCondition(x, v1alpha1.ConditionReady, metav1.ConditionFalse)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %s", harness.Condition(exp, v1alpha1.ConditionCertificateModelEnabled).Message)
	rc, err := west.WaitRemoteCluster(ctx, ns, "east-gated", time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonCertificateModelDisabled
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := harness.Condition(rc, v1alpha1.ConditionReady); !strings.Contains(c.Message, "environment east refused") || !strings.Contains(c.Message, "certificateModel.enabled") {
		t.Errorf("RemoteCluster Ready = %+v", c)
	}
	if cm, fps, err := east.ConfigMapCAs(ctx, ns, wiring.TransportCAConfigMapName("logs")); err != nil || cm != nil {
		t.Errorf("east's transport CA ConfigMap of logs exists with %s (err=%v)", short(fps), err)
	}
	if fps, err := east.TransportCAs(ctx, ns, "logs"); err != nil || len(fps) != 1 {
		t.Errorf("east's transport bundle of logs holds %s (err=%v), want its own CA alone", short(fps), err)
	}
}
