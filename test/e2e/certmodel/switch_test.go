package certmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/harness"
)

// TestSwitchModels: a live certificate-model link is switched to the API-key model by editing
// the export and the RemoteCluster (each side decides for itself: either alone leaves the link
// refused with ModelNotAllowed), and back. Each time it connects again with no other step, and
// the model it left leaves nothing behind: no peer CA in either transport trust (the agent's
// ConfigMaps gone, both Elasticsearch resources unwired), respectively no API key, credentials
// Secret or remote cluster client CA.
func TestSwitchModels(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := setup(ctx, t, "switch", "west-sw", options{version: "9.3.2", remoteClusterServer: true})
	probe := l.connect(ctx, t)
	t.Logf("certificate model connected %s after the RemoteCluster was created", time.Since(l.created).Round(100*time.Millisecond))
	l.requireCertificateTrust(ctx, t)

	// 1. certificate -> apiKey.
	switched := time.Now()
	if err := l.remote.UpdateClusterExport(ctx, l.ns, "logs", func(exp *v1alpha1.ClusterExport) {
		exp.Spec.Model = v1alpha1.SecurityModelAPIKey
		exp.Spec.Access = &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}}
		exp.Spec.ProxyAddress = l.remotePod.RemoteClusterAddress()
	}); err != nil {
		t.Fatal(err)
	}
	l.waitRefused(ctx, t, "the export switched to apiKey, the RemoteCluster still asks for certificate")
	l.setModel(ctx, t, v1alpha1.SecurityModelAPIKey)
	l.waitModel(ctx, t, v1alpha1.SecurityModelAPIKey)
	l.waitConnectedWith(ctx, t, true)
	t.Logf("apiKey model connected %s after the export was switched", time.Since(switched).Round(100*time.Millisecond))
	took := waitFor(ctx, t, 30*time.Second, "no transport trust left after the switch to apiKey", func() (bool, string) {
		return l.noCertificateTrust(ctx)
	})
	t.Logf("transport trust gone %s later", took.Round(100*time.Millisecond))
	if cm, fps, err := l.local.ConfigMapCAs(ctx, l.ns, "ccs-ecklink-remote-ca"); err != nil || cm == nil || len(fps) == 0 {
		t.Errorf("east's remote cluster client CA ConfigMap: %v %v", fps, err)
	}
	l.requireNoWarning(ctx, t)
	r := probe.Result()
	t.Logf("probe during the switch: %d disconnected samples", len(r.Disconnected))

	// 2. apiKey -> certificate.
	before := len(r.Disconnected)
	switched = time.Now()
	l.setModel(ctx, t, v1alpha1.SecurityModelCertificate)
	l.waitRefused(ctx, t, "the RemoteCluster switched to certificate, the export still uses apiKey")
	if err := l.remote.UpdateClusterExport(ctx, l.ns, "logs", harnessCertificate(l.remotePod.TransportAddress())); err != nil {
		t.Fatal(err)
	}
	l.waitModel(ctx, t, v1alpha1.SecurityModelCertificate)
	l.waitConnectedWith(ctx, t, false)
	t.Logf("certificate model connected %s after the export was switched back", time.Since(switched).Round(100*time.Millisecond))
	l.requireCertificateTrust(ctx, t)
	took = waitFor(ctx, t, 30*time.Second, "no API-key material left after the switch back", func() (bool, string) {
		if n := len(l.activeKeys()); n > 0 {
			return false, "active API keys remain"
		}
		if cm, _, _ := l.local.ConfigMapCAs(ctx, l.ns, "ccs-ecklink-remote-ca"); cm != nil {
			return false, "remote cluster client CA ConfigMap remains"
		}
		if _, err := l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "ccs-ecklink-remote-credentials", metav1.GetOptions{}); err == nil {
			return false, "credentials Secret remains"
		}
		if _, ann, _ := wiredTo(ctx, l.local, l.ns, "ccs"); ann["ecklink.io/wiring"] != "" {
			return false, "API-key wiring remains on ccs"
		}
		return true, ""
	})
	t.Logf("API-key material gone %s later", took.Round(100*time.Millisecond))
	r = probe.Stop()
	t.Logf("probe: %d samples, %d connected; disconnected samples: %d during the switch to apiKey, %d during the switch back",
		r.Samples, r.Connected, before, len(r.Disconnected)-before)
}

// setModel sets the RemoteCluster's spec.model.
func (l *certLink) setModel(ctx context.Context, t *testing.T, model v1alpha1.SecurityModel) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rc, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
		if err != nil {
			return err
		}
		rc.Spec.Model = model
		_, err = l.local.CRDs.RemoteClusters().Update(ctx, rc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// waitRefused waits for the RemoteCluster to say that the two sides name different models.
func (l *certLink) waitRefused(ctx context.Context, t *testing.T, when string) {
	t.Helper()
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonModelNotAllowed
	})
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	t.Logf("%s: %s", when, harness.Condition(rc, v1alpha1.ConditionReady).Message)
}

// waitConnectedWith waits until east's Elasticsearch reports the alias connected with (or
// without) credentials in its keystore on three samples in a row, each taken after a connection
// check of its own: _remote/info may report the previous connection for a moment.
func (l *certLink) waitConnectedWith(ctx context.Context, t *testing.T, credentials bool) {
	t.Helper()
	streak := 0
	waitFor(ctx, t, 90*time.Second, fmt.Sprintf("connected with credentials=%v", credentials), func() (bool, string) {
		info, err := l.remoteInfo(ctx)
		switch {
		case err != nil:
			streak = 0
			return false, err.Error()
		case !info.Connected || info.Credentials != credentials:
			streak = 0
			return false, fmt.Sprintf("connected=%v credentials=%v (%s)", info.Connected, info.Credentials, l.localPod.RemoteError(l.alias))
		}
		streak++
		time.Sleep(time.Second)
		return streak >= 3, ""
	})
	if n := len(l.activeKeys()); (n == 1) != credentials {
		t.Errorf("%d active API keys with credentials=%v", n, credentials)
	}
}

// remoteInfo is east's GET /_remote/info for the link's alias.
func (l *certLink) remoteInfo(ctx context.Context) (aliasInfo, error) {
	c, err := l.localPod.Client(ctx)
	if err != nil {
		return aliasInfo{}, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/_remote/info", nil)
	resp, err := c.Perform(req)
	if err != nil {
		return aliasInfo{}, err
	}
	defer resp.Body.Close()
	var all map[string]struct {
		Connected   bool   `json:"connected"`
		Credentials string `json:"cluster_credentials"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return aliasInfo{}, err
	}
	a := all[l.alias]
	return aliasInfo{Connected: a.Connected, Credentials: a.Credentials != ""}, nil
}

type aliasInfo struct{ Connected, Credentials bool }

// harnessCertificate switches an export to the certificate model at a transport address.
func harnessCertificate(addr string) func(*v1alpha1.ClusterExport) {
	return func(exp *v1alpha1.ClusterExport) {
		harness.CertificateModel(exp)
		exp.Spec.ProxyAddress = addr
	}
}

// waitModel waits for the RemoteCluster to report the model and be Ready.
func (l *certLink) waitModel(ctx context.Context, t *testing.T, model v1alpha1.SecurityModel) {
	t.Helper()
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 90*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return rc.Status.Model == model && harness.HasCondition(rc, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		if agg, aerr := l.local.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "ccs-es-secure-settings", metav1.GetOptions{}); aerr == nil {
			var writes []string
			for _, mf := range agg.ManagedFields {
				writes = append(writes, mf.Manager+"@"+mf.Time.Format(time.TimeOnly))
			}
			t.Logf("ccs-es-secure-settings: created %s, writes %v, %d keys; pod started %s",
				agg.CreationTimestamp.Format(time.TimeOnly), writes, len(agg.Data), l.localPod.StartTime().Format(time.TimeOnly))
		}
		t.Fatal(err)
	}
}

// requireCertificateTrust checks the agent's own ConfigMaps on both sides, wired, with the peer's
// current CA.
func (l *certLink) requireCertificateTrust(ctx context.Context, t *testing.T) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, "both sides trust each other through the agent's ConfigMaps", func() (bool, string) {
		westCA, _ := ownCA(ctx, l.remote, l.ns, "logs")
		eastCA, _ := ownCA(ctx, l.local, l.ns, "ccs")
		_, remoteFPs, _ := l.remoteTrust(ctx)
		_, localFPs, _ := l.localTrust(ctx)
		westWired, _, _ := wiredTo(ctx, l.remote, l.ns, "logs")
		eastWired, _, _ := wiredTo(ctx, l.local, l.ns, "ccs")
		ok := contains(remoteFPs, eastCA) && contains(localFPs, westCA) &&
			westWired == "logs-ecklink-transport-ca" && eastWired == "ccs-ecklink-transport-ca"
		return ok, "west " + short(remoteFPs) + " wired to " + westWired + ", east " + short(localFPs) + " wired to " + eastWired
	})
}

// noCertificateTrust reports whether the certificate model left nothing on either side.
func (l *certLink) noCertificateTrust(ctx context.Context) (bool, string) {
	for _, side := range []struct {
		c  *harness.Cluster
		es string
	}{{l.remote, "logs"}, {l.local, "ccs"}} {
		if cm, fps, _ := side.c.ConfigMapCAs(ctx, l.ns, side.es+"-ecklink-transport-ca"); cm != nil {
			return false, side.c.Name + ": ConfigMap " + cm.Name + " remains with " + short(fps)
		}
		name, ann, err := wiredTo(ctx, side.c, l.ns, side.es)
		if err != nil {
			return false, err.Error()
		}
		if name != "" || ann["ecklink.io/transport-ca-wiring"] != "" {
			return false, side.c.Name + ": " + side.es + " still names ConfigMap " + name
		}
		fps, err := side.c.TransportCAs(ctx, l.ns, side.es)
		if err != nil || len(fps) != 1 {
			return false, side.c.Name + ": ECK's transport bundle holds " + short(fps)
		}
	}
	return true, ""
}

// requireNoWarning checks that the deprecation warning went with the certificate model.
func (l *certLink) requireNoWarning(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := l.remote.WaitClusterExport(ctx, l.ns, "logs", 30*time.Second, func(x *v1alpha1.ClusterExport) bool {
		return harness.Condition(x, v1alpha1.ConditionSecurityModelCurrent) == nil && harness.HasCondition(x, v1alpha1.ConditionReady, metav1.ConditionTrue)
	}); err != nil {
		t.Error(err)
	}
	if _, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 30*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		return harness.Condition(rc, v1alpha1.ConditionSecurityModelCurrent) == nil
	}); err != nil {
		t.Error(err)
	}
}
