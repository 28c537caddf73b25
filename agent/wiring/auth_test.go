package wiring

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ecklink/ecklink/agent/internal/testenv"
)

var testAuth = Auth{FileRealm: "ccs-ecklink-user", Roles: "ccs-ecklink-roles"}

func TestApplyAndRemoveAuth(t *testing.T) {
	tests := []struct {
		name          string
		spec          string
		changes       int
		fileRealmWant []string
	}{
		{"no auth", "  version: 9.1.0\n", 2, []string{"ccs-ecklink-user"}},
		{"the user's own entries", "  auth:\n    disableElasticUser: true\n    fileRealm: [{secretName: team}]\n    roles: [{secretName: team-roles}]\n", 2,
			[]string{"team", "ccs-ecklink-user"}},
		{"already named by the user", "  auth:\n    fileRealm: [{secretName: ccs-ecklink-user}]\n", 1, []string{"ccs-ecklink-user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := es(t, tt.spec)
			obj := orig.DeepCopy()
			changes, err := ApplyAuth(obj, testAuth)
			if err != nil || len(changes) != tt.changes {
				t.Fatalf("ApplyAuth = %v, %v; want %d changes", changes, err, tt.changes)
			}
			if got := testenv.AuthSecretNames(obj, "fileRealm"); !reflect.DeepEqual(got, tt.fileRealmWant) {
				t.Errorf("fileRealm = %v, want %v", got, tt.fileRealmWant)
			}
			if len(MissingAuth(obj, testAuth)) != 0 {
				t.Error("MissingAuth after ApplyAuth is not empty")
			}
			if again, _ := ApplyAuth(obj, testAuth); again != nil {
				t.Errorf("second ApplyAuth = %v", again)
			}
			if _, err := RemoveAuth(obj, testAuth); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(obj.Object["spec"], orig.Object["spec"]) || RecordedAuth(obj) {
				t.Errorf("RemoveAuth did not restore the spec:\n got %v\nwant %v", obj.Object["spec"], orig.Object["spec"])
			}
		})
	}
}

func TestApplyAuthRejectsAMalformedList(t *testing.T) {
	if _, err := ApplyAuth(es(t, "  auth:\n    fileRealm: oops\n"), testAuth); err == nil || !strings.Contains(err.Error(), "spec.auth.fileRealm") {
		t.Fatalf("err = %v", err)
	}
}

// In manual mode the snippet carries the complete auth lists (ECK makes them atomic).
func TestSnippetWithAuth(t *testing.T) {
	obj := es(t, "  version: 9.1.0\n  auth:\n    roles: [{secretName: team-roles}]\n  nodeSets:\n  - name: default\n")
	s, err := Snippet(obj, testAuth)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"auth:", "- secretName: team-roles", "- secretName: ccs-ecklink-roles", "- secretName: ccs-ecklink-user", "secureSettings:"} {
		if !strings.Contains(s, want) {
			t.Errorf("snippet lacks %q:\n%s", want, s)
		}
	}
	wired := obj.DeepCopy()
	if _, err := Apply(wired); err != nil {
		t.Fatal(err)
	}
	if s, _ := Snippet(wired); strings.Contains(s, "auth:") || s != "" {
		t.Errorf("snippet without the Auth part = %q", s)
	}
	if _, err := ApplyAuth(wired, testAuth); err != nil {
		t.Fatal(err)
	}
	if s, _ := Snippet(wired, testAuth); s != "" {
		t.Errorf("snippet of a wired resource = %q", s)
	}
}
