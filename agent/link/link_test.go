package link

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{in: "apps/ccs/eu-logs"},
		{in: "apps/ccs/EU_logs-2"},
		{in: "apps/ccs", wantErr: "want namespace/elasticsearch/alias"},
		{in: "Apps/ccs/a", wantErr: "link namespace \"Apps\""},
		{in: "apps/ccs/bad.alias", wantErr: "link alias \"bad.alias\""},
		{in: "apps/ccs/a b", wantErr: "link alias"},
		{in: "apps//a", wantErr: "link elasticsearch \"\""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || id.String() != tt.in {
				t.Fatalf("Parse(%q) = %v, %v", tt.in, id, err)
			}
			kind, back, err := ParseResource(Resource(KindCredentials, id))
			if err != nil || kind != KindCredentials || back != id {
				t.Fatalf("resource round trip = %s %v %v", kind, back, err)
			}
			if p, err := FromProto(id.Proto()); err != nil || p != id {
				t.Fatalf("proto round trip = %v %v", p, err)
			}
		})
	}
}
