package link

import (
	"strings"
	"testing"
)

func TestPeerFields(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"", true}, {"9.3.2", true}, {"8.19.0-SNAPSHOT", true},
		{"-9", false}, {"9 3", false}, {strings.Repeat("9", MaxVersionLen+1), false},
	} {
		if got := ValidVersion(tc.name); got != tc.ok {
			t.Errorf("ValidVersion(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
	if !ValidAPIKeyID("VuaCfGcBCdbkQm-e5aOx") || ValidAPIKeyID("") || ValidAPIKeyID("a/b") {
		t.Error("ValidAPIKeyID misjudges")
	}
	for _, tc := range []struct {
		fps  []string
		want string
	}{
		{nil, ""},
		{[]string{fp, fp}, ""},
		{[]string{fp, "AB"}, `applied_ca_fingerprints entry "AB": want 64 lower-case hex digits`},
		{make([]string, MaxFingerprints+1), "33 applied_ca_fingerprints, at most 32 allowed"},
	} {
		err := CheckFingerprints("applied_ca_fingerprints", tc.fps)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("CheckFingerprints(%d entries) = %q, want %q", len(tc.fps), got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("CheckFingerprints(%d entries) = nil, want %q", len(tc.fps), tc.want)
		}
	}
}
