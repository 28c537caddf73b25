package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/test/esim"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestLicensePreflight: an exported Elasticsearch on a basic license cannot serve the API-key
// model. The exporting agent reads its license and refuses the link (LicenseInsufficient)
// before creating any key; the RemoteCluster and the ClusterExport each get LicenseSufficient
// False naming the cluster, its license and what is needed, and Ready says so. Once the
// license is upgraded, the link is served (one key, the credentials carry the new license) and
// both conditions turn True.
func TestLicensePreflight(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	const ns, alias = "license", "west-license"
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.SetLicense(esim.LicenseBasic, esim.LicenseActive); err != nil {
		t.Fatal(err)
	}
	_, err = east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, ns, "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, ns, alias, "ccs", alias, "west", ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const need = "needs an active enterprise or trial license on both clusters"
	named := "the exported Elasticsearch license/logs (environment west) has a basic (active) license"
	rc, err := east.WaitRemoteCluster(ctx, ns, alias, 3*time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		c, r := harness.Condition(rc, v1alpha1.ConditionLicenseSufficient), harness.Condition(rc, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonLicenseInsufficient &&
			r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.ReasonLicenseInsufficient
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := harness.Condition(rc, v1alpha1.ConditionLicenseSufficient); !strings.Contains(c.Message, "environment west refused the link: "+named) || !strings.Contains(c.Message, need) {
		t.Errorf("RemoteCluster LicenseSufficient: %s", c.Message)
	}
	t.Logf("refused for the license %s after the RemoteCluster was created", time.Since(start).Round(time.Millisecond))
	if _, err := west.WaitClusterExport(ctx, ns, "logs", 30*time.Second, func(exp *v1alpha1.ClusterExport) bool {
		c, r := harness.Condition(exp, v1alpha1.ConditionLicenseSufficient), harness.Condition(exp, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, named) && strings.Contains(c.Message, need) &&
			r != nil && r.Status == metav1.ConditionFalse && r.Reason == v1alpha1.ReasonLicenseInsufficient
	}); err != nil {
		t.Fatal(err)
	}
	if keys := remote.Node().APIKeys(); len(keys) != 0 {
		t.Errorf("%d API keys created in west for a link its license cannot serve: %s", len(keys), describeKeys(keys))
	}

	upgraded := time.Now()
	if err := remote.SetLicense(esim.LicenseEnterprise, esim.LicenseActive); err != nil {
		t.Fatal(err)
	}
	// Served now: the peer's credentials carry the upgraded license. (Connecting then takes
	// ECK's restart for the new keystore, which the other scenarios of the suite show.)
	if _, err := east.WaitRemoteCluster(ctx, ns, alias, time.Minute, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionLicenseSufficient)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "license/ccs: enterprise (active)") &&
			strings.Contains(c.Message, "(environment west): enterprise (active)")
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("served %s after the license upgrade", time.Since(upgraded).Round(time.Millisecond))
	if keys := remote.Node().APIKeys(); len(keys) != 1 {
		t.Errorf("%d API keys in west after the upgrade, want 1: %s", len(keys), describeKeys(keys))
	}
	if _, err := west.WaitClusterExport(ctx, ns, "logs", time.Minute, func(exp *v1alpha1.ClusterExport) bool {
		c := harness.Condition(exp, v1alpha1.ConditionLicenseSufficient)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonLicenseSufficient
	}); err != nil {
		t.Fatal(err)
	}
}
