package esim

import (
	"strings"
	"testing"
)

func TestGetLicense(t *testing.T) {
	e := newEnv(t, "9.1.0")
	r := e.do("GET", "/_license", "")
	if r.status != 200 || jsonPath(r.body, "license.type") != "enterprise" || jsonPath(r.body, "license.status") != "active" {
		t.Fatalf("default license: %d %s", r.status, r.raw)
	}
	if !strings.HasPrefix(string(r.raw), `{"license":{"status":"active","uid":`) || jsonPath(r.body, "license.expiry_date_in_millis") == nil {
		t.Errorf("shape: %s", r.raw)
	}
	if err := e.n.SetLicense(LicenseBasic, LicenseActive); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/_license?local=true&accept_enterprise=true", "")
	if jsonPath(r.body, "license.type") != "basic" || jsonPath(r.body, "license.expiry_date") != nil {
		t.Errorf("basic: %s", r.raw)
	}
	for _, bad := range [][2]string{{"diamond", LicenseActive}, {LicenseGold, "invalid"}} {
		if err := e.n.SetLicense(bad[0], bad[1]); err == nil {
			t.Errorf("SetLicense(%q, %q) accepted", bad[0], bad[1])
		}
	}
	runErrCases(t, e, []errCase{
		{name: "unknown parameter", method: "GET", path: "/_license?verbose=true", status: 400, typ: "illegal_argument_exception",
			reason: "request [/_license] contains unrecognized parameter: [verbose]"},
		{name: "unauthenticated", method: "GET", path: "/_license", opts: []opt{noAuth()}, status: 401, typ: "security_exception",
			reason: "missing authentication credentials for REST request [/_license]"},
	})
}

func TestCrossClusterKeysNeedTheLicense(t *testing.T) {
	tests := []struct {
		typ, status string
		allowed     bool
	}{
		{LicenseEnterprise, LicenseActive, true},
		{LicenseTrial, LicenseActive, true},
		{LicensePlatinum, LicenseActive, false},
		{LicenseBasic, LicenseActive, false},
		{LicenseEnterprise, LicenseExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.status, func(t *testing.T) {
			e := newEnv(t, "9.1.0")
			id, _ := e.createCCKey(`{"name":"k","access":{"search":[{"names":["logs"]}]}}`)
			if err := e.n.SetLicense(tt.typ, tt.status); err != nil {
				t.Fatal(err)
			}
			if got := e.n.CrossClusterAllowed(); got != tt.allowed {
				t.Errorf("CrossClusterAllowed = %v, want %v", got, tt.allowed)
			}
			create := e.do("POST", "/_security/cross_cluster/api_key", `{"name":"k2","access":{"search":[{"names":["logs"]}]}}`)
			update := e.do("PUT", "/_security/cross_cluster/api_key/"+id, `{"metadata":{"a":1}}`)
			// Checked before the body is read: a malformed body gets the same answer.
			malformed := e.do("POST", "/_security/cross_cluster/api_key", `{"nope":`)
			for name, r := range map[string]result{"create": create, "update": update, "malformed create": malformed} {
				if tt.allowed {
					if name != "malformed create" && r.status != 200 {
						t.Errorf("%s: %d %s", name, r.status, r.raw)
					}
					continue
				}
				wantErr(t, r, 403, "security_exception", "current license is non-compliant for [advanced-remote-cluster-security]")
				if !strings.Contains(string(r.raw), `"license.expired.feature":"advanced-remote-cluster-security"`) {
					t.Errorf("%s: feature header: %s", name, r.raw)
				}
			}
		})
	}
}
