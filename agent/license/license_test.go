package license

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	ent := License{Type: Enterprise, Status: Active}
	local := func(l License) Cluster { return Cluster{Name: "the local Elasticsearch apps/ccs", License: l} }
	remote := func(l License) Cluster { return Cluster{Name: "the remote Elasticsearch data/logs", License: l} }
	tests := []struct {
		name          string
		model         Model
		local, remote License
		sufficient    bool
		unknown       bool
		mention       []string
	}{
		{"enterprise both", ModelAPIKey, ent, ent, true, false, []string{"enterprise (active)"}},
		{"trial allows everything", ModelAPIKey, License{Trial, Active}, ent, true, false, nil},
		{"basic local", ModelAPIKey, License{Basic, Active}, ent, false, false, []string{"apps/ccs has a basic (active) license", "enterprise or trial"}},
		{"platinum remote", ModelAPIKey, ent, License{Platinum, Active}, false, false, []string{"data/logs has a platinum (active) license"}},
		{"expired enterprise", ModelAPIKey, License{Enterprise, Expired}, ent, false, false, []string{"enterprise (expired)"}},
		{"both basic names both", ModelAPIKey, License{Basic, Active}, License{Basic, Active}, false, false, []string{"apps/ccs", "data/logs"}},
		{"remote unknown", ModelAPIKey, ent, License{}, true, true, []string{"data/logs not known"}},
		{"insufficient wins over unknown", ModelAPIKey, License{Gold, Active}, License{}, false, false, []string{"gold"}},
		{"certificate on basic", ModelCertificate, License{Basic, Active}, License{Basic, Active}, true, false, []string{"replication needs platinum"}},
		{"unknown type", ModelAPIKey, License{"diamond", Active}, ent, false, false, []string{"diamond"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Check(tt.model, local(tt.local), remote(tt.remote))
			if v.Sufficient != tt.sufficient || v.Unknown != tt.unknown {
				t.Fatalf("Check = %+v, want sufficient %v unknown %v", v, tt.sufficient, tt.unknown)
			}
			for _, m := range tt.mention {
				if !strings.Contains(v.Message, m) {
					t.Errorf("message %q does not mention %q", v.Message, m)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		l  License
		ok bool
	}{
		{License{Enterprise, Active}, true},
		{License{"", Active}, false},
		{License{Basic, ""}, false},
		{License{"Enterprise", Active}, false},
		{License{strings.Repeat("a", 33), Active}, false},
		{License{Basic, "act\nive"}, false},
	} {
		if err := tt.l.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.l, err, tt.ok)
		}
	}
}

func TestNonCompliant(t *testing.T) {
	if !NonCompliant("security_exception: current license is non-compliant for [advanced-remote-cluster-security]") {
		t.Error("the license refusal is not recognized")
	}
	if NonCompliant("action [cluster:admin/xpack/security/cross_cluster/api_key/create] is unauthorized") {
		t.Error("a privilege refusal is taken for the license refusal")
	}
}
