package pod

import (
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// TestRemoteClusterPortNeedsTheLicense: the API-key model connects only while both clusters have
// an active enterprise or trial license; the side without one names the feature.
func TestRemoteClusterPortNeedsTheLicense(t *testing.T) {
	now := time.Now()
	localCA := newTestCA(t, "ccs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	remoteCA := newTestCA(t, "logs", nil, now.Add(-time.Hour), now.Add(time.Hour))
	for _, tc := range []struct {
		name          string
		local, remote [2]string
		want          string
	}{
		{name: "enterprise both", local: [2]string{esim.LicenseEnterprise, esim.LicenseActive}, remote: [2]string{esim.LicenseEnterprise, esim.LicenseActive}},
		{name: "trial local", local: [2]string{esim.LicenseTrial, esim.LicenseActive}, remote: [2]string{esim.LicenseEnterprise, esim.LicenseActive}},
		{name: "basic remote", local: [2]string{esim.LicenseEnterprise, esim.LicenseActive}, remote: [2]string{esim.LicenseBasic, esim.LicenseActive},
			want: "current license is non-compliant for [advanced-remote-cluster-security]"},
		{name: "platinum local", local: [2]string{esim.LicensePlatinum, esim.LicenseActive}, remote: [2]string{esim.LicenseEnterprise, esim.LicenseActive},
			want: "current license is non-compliant for [advanced-remote-cluster-security]"},
		{name: "expired remote", local: [2]string{esim.LicenseEnterprise, esim.LicenseActive}, remote: [2]string{esim.LicenseEnterprise, esim.LicenseExpired},
			want: "current license is non-compliant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newTestPod(t, "logs", remoteCA, [][]byte{localCA.pem()}, nil).withNode(t, "9.1.0")
			local := newTestPod(t, "ccs", localCA, [][]byte{remoteCA.pem()}, nil).withNode(t, "9.1.0")
			key := remote.rest(t, "POST", "/_security/cross_cluster/api_key", `{"name":"k","access":{"search":[{"names":["*"]}]}}`)
			local.keystore["cluster.remote.remote.credentials"] = []byte(key["encoded"].(string))
			local.running.Config["xpack.security.remote_cluster_client.ssl.certificate_authorities"] = local.running.Config.List(keyTransportCAs)
			if err := remote.SetLicense(tc.remote[0], tc.remote[1]); err != nil {
				t.Fatal(err)
			}
			if err := local.SetLicense(tc.local[0], tc.local[1]); err != nil {
				t.Fatal(err)
			}
			err := local.dial(remote.rcsLn.Addr().String(), "")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want connected, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}
