package exporter

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// The signing CA of strong identity on the exporting side, against the answer fixture: the
// consumer's signing CAs go into <es>-ecklink-signing-ca (mounted in the exported Elasticsearch
// and listed in cluster.remote.signing.certificate_authorities); the answer names them trusted
// only once every node can see the file; the key carries the consumer's identity; the CAs leave
// with the link and the whole setup with the export.

// signingConsumer is the signing CA of environment east and the request of axLink with it.
type signingConsumer struct {
	bundle  []byte
	subject string
}

func newSigningConsumer(t *testing.T) signingConsumer {
	t.Helper()
	auth, err := signing.New(signing.Config{Environment: "east"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return signingConsumer{bundle: auth.TrustBundle(time.Now()), subject: signing.SubjectFor("east", axLink.Namespace, axLink.Elasticsearch).String()}
}

func (c signingConsumer) request(version string) *peerv1.ImportRequest {
	return &peerv1.ImportRequest{Link: axLink.Proto(), ExportNamespace: axNS, ExportName: axExport, ElasticsearchVersion: version,
		SigningCaBundle: c.bundle, SigningSubject: c.subject}
}

func (c signingConsumer) fingerprints(t *testing.T) []string {
	t.Helper()
	certs, err := pemutil.ParseCertificates(c.bundle, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ca := range certs {
		out = append(out, pemutil.Fingerprint(ca))
	}
	slices.Sort(out)
	return out
}

// newSigningFixture exports data/logs to east with spec.strongIdentity mode.
func newSigningFixture(t *testing.T, mode v1alpha1.StrongIdentityMode) *answerFixture {
	t.Helper()
	exp := axExportObject("east")
	exp.Spec.StrongIdentity = mode
	return newAnswerFixture(t, exp, axElasticsearch(true))
}

// signingCAs is the signing CA ConfigMap of the exported Elasticsearch (nil: none).
func (f *answerFixture) signingCAs(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	return f.configMap(t, wiring.SigningCAConfigMapName(axES))
}

// signingMounted reports whether the exported Elasticsearch mounts the signing CA ConfigMap.
func (f *answerFixture) signingMounted(t *testing.T) bool {
	t.Helper()
	return wiring.HasVolume(f.elasticsearch(t), wiring.SigningCAVolume(axES))
}

// importSigning receives east's request and runs one link pass.
func (f *answerFixture) importSigning(t *testing.T, req *peerv1.ImportRequest) time.Duration {
	t.Helper()
	if err := f.e.OnImport("east", req); err != nil {
		t.Fatalf("refused on receipt: %v", err)
	}
	return f.pass(t, "east", axLink)
}

// TestSigningCATrustedAfterTheSyncDelay: a link of an export requiring strong identity puts the
// consumer's signing CAs into the ConfigMap (owner entry and ca.crt), mounts it, lists the file
// in cluster.remote.signing.certificate_authorities and makes the key with the consumer's
// identity; the answer names the CAs trusted only once the kubelet's sync delay has passed.
func TestSigningCATrustedAfterTheSyncDelay(t *testing.T) {
	f := newSigningFixture(t, v1alpha1.StrongIdentityRequired)
	consumer := newSigningConsumer(t)
	requeue := f.importSigning(t, consumer.request("9.3.2"))

	c := f.credentials("east", axLink)
	if c == nil || !c.GetStrongIdentity() || !c.GetIdentityRequired() {
		t.Fatalf("answer %v, want credentials requiring strong identity", f.held("east", link.Resource(link.KindCredentials, axLink)))
	}
	if len(c.GetSigningTrustedFingerprints()) != 0 {
		t.Errorf("CAs %v named trusted before the nodes can see the file", c.GetSigningTrustedFingerprints())
	}
	if requeue <= 0 || requeue > f.e.cfg.SigningSyncDelay {
		t.Errorf("requeue %v, want a look again within the sync delay %v", requeue, f.e.cfg.SigningSyncDelay)
	}
	cm := f.signingCAs(t)
	if cm == nil || cm.Data[signingOwner("east", axLink)] != string(consumer.bundle) || cm.Data[wiring.CAFileKey] == "" {
		t.Fatalf("signing CA ConfigMap %v, want east's bundle and ca.crt", cm)
	}
	if !f.signingMounted(t) {
		t.Error("the signing CA ConfigMap is not mounted in the exported Elasticsearch")
	}
	if got := f.node.SigningCertificateAuthorities(); !slices.Equal(got, []string{wiring.SigningCAPath}) {
		t.Errorf("cluster.remote.signing.certificate_authorities %v, want [%s]", got, wiring.SigningCAPath)
	}
	keys := f.liveKeys("east", axLink)
	if len(keys) != 1 {
		t.Fatalf("live keys %v, want one", keys)
	}
	if k, _ := f.node.APIKey(keys[0]); k.CertificateIdentity == nil || *k.CertificateIdentity != signing.IdentityPattern(consumer.subject) {
		t.Errorf("key identity %v, want the consumer's subject", k.CertificateIdentity)
	}

	f.offset.Add(int64(f.e.cfg.SigningSyncDelay + time.Second))
	f.pass(t, "east", axLink)
	if got := f.credentials("east", axLink).GetSigningTrustedFingerprints(); !slices.Equal(got, consumer.fingerprints(t)) {
		t.Errorf("trusted after the sync delay %v, want %v", got, consumer.fingerprints(t))
	}
	if keys2 := f.liveKeys("east", axLink); !slices.Equal(keys2, keys) {
		t.Errorf("keys %v after the trust, want %v kept", keys2, keys)
	}
}

// TestSigningCAOutcomes: what each export mode and consumer makes of the signing CA: held or
// not, the answer's strong identity fields or the refusal.
func TestSigningCAOutcomes(t *testing.T) {
	consumer := newSigningConsumer(t)
	old := consumer.request("9.2.1")
	noCA := consumer.request("9.3.2")
	noCA.SigningCaBundle, noCA.SigningSubject = nil, ""
	for _, tc := range []struct {
		name     string
		mode     v1alpha1.StrongIdentityMode
		req      *peerv1.ImportRequest
		refusal  string
		held     bool   // the consumer's CAs are in the ConfigMap
		fallback string // part of the answer's StrongIdentityFallback
	}{
		{name: "required, both 9.3", mode: v1alpha1.StrongIdentityRequired, req: consumer.request("9.3.2"), held: true},
		{name: "preferred, both 9.3", mode: v1alpha1.StrongIdentityPreferred, req: consumer.request("9.3.2"), held: true},
		{name: "required, consumer 9.2", mode: v1alpha1.StrongIdentityRequired, req: old, refusal: v1alpha1.ReasonStrongIdentityUnavailable},
		{name: "required, consumer sent no CA", mode: v1alpha1.StrongIdentityRequired, req: noCA, refusal: v1alpha1.ReasonStrongIdentityUnavailable},
		{name: "preferred, consumer 9.2", mode: v1alpha1.StrongIdentityPreferred, req: old, fallback: "needs 9.3 or later"},
		{name: "preferred, consumer sent no CA", mode: v1alpha1.StrongIdentityPreferred, req: noCA, fallback: "upgrade it"},
		{name: "not asked for", req: consumer.request("9.3.2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSigningFixture(t, tc.mode)
			f.importSigning(t, tc.req)
			if tc.refusal != "" {
				if r := f.refusalOf("east", axLink); r == nil || r.GetReason() != tc.refusal {
					t.Fatalf("answer %v, want a refusal %s", f.held("east", link.Resource(link.KindCredentials, axLink)), tc.refusal)
				}
				if len(f.liveKeys("east", axLink)) != 0 {
					t.Error("a key was made for a refused link")
				}
			} else {
				c := f.credentials("east", axLink)
				if c == nil {
					t.Fatalf("no credentials: %v", f.held("east", link.Resource(link.KindCredentials, axLink)))
				}
				if c.GetStrongIdentity() != tc.held {
					t.Errorf("StrongIdentity %v, want %v", c.GetStrongIdentity(), tc.held)
				}
				if !strings.Contains(c.GetStrongIdentityFallback(), tc.fallback) || (tc.fallback == "") != (c.GetStrongIdentityFallback() == "") {
					t.Errorf("StrongIdentityFallback %q, want %q", c.GetStrongIdentityFallback(), tc.fallback)
				}
			}
			cm := f.signingCAs(t)
			if held := cm != nil && cm.Data[signingOwner("east", axLink)] != ""; held != tc.held {
				t.Errorf("consumer's CAs held %v, want %v", held, tc.held)
			}
		})
	}
}

// TestSigningCAFileNotVisibleYet: while Elasticsearch refuses the CA file (not on every node
// yet), the pass succeeds, names nothing trusted and looks again within seconds; once the file is
// there, the setting is written.
func TestSigningCAFileNotVisibleYet(t *testing.T) {
	f := newSigningFixture(t, v1alpha1.StrongIdentityRequired)
	var visible atomic.Bool
	f.node.SetFileFunc(func(p string) (string, bool) { return p, visible.Load() })
	requeue := f.importSigning(t, newSigningConsumer(t).request("9.3.2"))
	if requeue <= 0 || requeue > 2*time.Second {
		t.Errorf("requeue %v while the file is missing, want within 2s", requeue)
	}
	if got := f.node.SigningCertificateAuthorities(); len(got) != 0 {
		t.Errorf("setting %v accepted although the file is missing", got)
	}
	if c := f.credentials("east", axLink); c == nil || len(c.GetSigningTrustedFingerprints()) != 0 {
		t.Errorf("answer %v, want credentials naming nothing trusted", c)
	}
	if f.signingCAs(t) == nil || !f.signingMounted(t) {
		t.Error("the ConfigMap and its mount must be in place for the file to appear")
	}
	visible.Store(true)
	f.pass(t, "east", axLink)
	if got := f.node.SigningCertificateAuthorities(); !slices.Equal(got, []string{wiring.SigningCAPath}) {
		t.Errorf("setting %v once the file is visible, want [%s]", got, wiring.SigningCAPath)
	}
}

// TestSigningCAReleased: the consumer's CAs leave the ConfigMap (and the setting goes with the
// last of them) when the link is removed; the export's deletion removes the mount and the
// ConfigMap too.
func TestSigningCAReleased(t *testing.T) {
	t.Run("link removed", func(t *testing.T) {
		f := newSigningFixture(t, v1alpha1.StrongIdentityRequired)
		f.importSigning(t, newSigningConsumer(t).request("9.3.2"))
		f.e.OnImportRemoved("east", axLink)
		f.pass(t, "east", axLink)
		cm := f.signingCAs(t)
		if cm != nil && (cm.Data[signingOwner("east", axLink)] != "" || cm.Data[wiring.CAFileKey] != "") {
			t.Errorf("signing CAs left after the removal: %v", cm.Data)
		}
		if got := f.node.SigningCertificateAuthorities(); len(got) != 0 {
			t.Errorf("setting %v left with no CA", got)
		}
	})
	t.Run("strong identity no longer used", func(t *testing.T) {
		// Preferred, then the consumer runs a version without it: the link goes on without
		// strong identity, and its CAs, found through the informer cache, leave the ConfigMap.
		f := newSigningFixture(t, v1alpha1.StrongIdentityPreferred)
		consumer := newSigningConsumer(t)
		f.importSigning(t, consumer.request("9.3.2"))
		owner := signingOwner("east", axLink)
		if cm := f.signingCAs(t); cm == nil || cm.Data[owner] == "" {
			t.Fatalf("the consumer's signing CAs are not in the ConfigMap: %v", cm)
		}
		waitFor(t, func() bool {
			cm, ok := f.e.cfg.Cache.OwnConfigMap(axNS, wiring.SigningCAConfigMapName(axES))
			return ok && cm.Data[owner] != ""
		})
		if err := f.e.OnImport("east", consumer.request("9.2.0")); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			f.pass(t, "east", axLink)
			if cm := f.signingCAs(t); cm == nil || cm.Data[owner] == "" {
				return
			}
		}
		t.Errorf("signing CAs of a link without strong identity left after 3 passes: %v", f.signingCAs(t).Data)
	})
	t.Run("export deleted", func(t *testing.T) {
		f := newSigningFixture(t, v1alpha1.StrongIdentityRequired)
		f.importSigning(t, newSigningConsumer(t).request("9.3.2"))
		waitFor(t, func() bool {
			es, ok := f.e.cfg.Cache.Elasticsearch(axNS, axES)
			return ok && wiring.HasVolume(es, wiring.SigningCAVolume(axES))
		})
		x, _ := f.e.cfg.Cache.ClusterExport(axNS, axExport)
		if err := f.e.finalizeExport(t.Context(), x); err != nil {
			t.Fatalf("finalize: %v", err)
		}
		if f.signingCAs(t) != nil || f.signingMounted(t) || len(f.node.SigningCertificateAuthorities()) != 0 {
			t.Errorf("after the export's deletion: ConfigMap %v, mounted %v, setting %v; want all gone",
				f.signingCAs(t) != nil, f.signingMounted(t), f.node.SigningCertificateAuthorities())
		}
	})
}

// TestSigningCAWriteFails: a signing CA ConfigMap that cannot be written fails the pass (retried)
// before any key or answer; the retry answers.
func TestSigningCAWriteFails(t *testing.T) {
	f := newSigningFixture(t, v1alpha1.StrongIdentityRequired)
	fail := fakekube.FailWhile(f.Kube, "create", "configmaps", errors.New("etcd unavailable"))
	if err := f.e.OnImport("east", newSigningConsumer(t).request("9.3.2")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.reconcileLink(t.Context(), "east", axLink); err == nil {
		t.Fatal("the pass succeeded although the signing CAs could not be written")
	}
	if m := f.held("east", link.Resource(link.KindCredentials, axLink)); m != nil {
		t.Errorf("answer sent without the signing CAs: %v", m)
	}
	if n := len(f.liveKeys("east", axLink)); n != 0 {
		t.Errorf("%d keys made before the signing CAs were in place", n)
	}
	fail.Store(false)
	f.pass(t, "east", axLink)
	if c := f.credentials("east", axLink); c == nil || !c.GetStrongIdentity() {
		t.Fatalf("no strong identity answer after the retry: %v", f.held("east", link.Resource(link.KindCredentials, axLink)))
	}
}
