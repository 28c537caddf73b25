package esim

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// agentRoles are the roles ecklink's agent gets (agent/esuser), with one role that names an
// unknown privilege and one that redefines a reserved role: both are skipped, as ES does.
const agentRoles = `
ecklink_settings:
  cluster: ["monitor", "cluster:admin/settings/update"]
ecklink_api_keys:
  cluster: ["manage_security"]
keys_no_invalidate:
  cluster: ["manage_api_key", "cluster:admin/xpack/security/cross_cluster/api_key/*"]
broken:
  cluster: ["manage_everything"]
superuser:
  cluster: []
`

// fileRealmEnv is a node whose users come only from ES's realm files, as ECK writes them.
func fileRealmEnv(t *testing.T, users map[string][]string) *tenv {
	t.Helper()
	e := newEnv(t, "9.1.0")
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var u, ur strings.Builder
	byRole := map[string][]string{}
	for name, roles := range users {
		u.WriteString(name + ":" + string(hash) + "\n")
		for _, r := range roles {
			byRole[r] = append(byRole[r], name)
		}
	}
	for r, names := range byRole {
		ur.WriteString(r + ":" + strings.Join(names, ",") + "\n")
	}
	e.n.SetFileRealm([]byte(u.String()), []byte(ur.String()), []byte(agentRoles))
	return e
}

const ccKeyBody = `{"name":"k","access":{"search":[{"names":["logs"]}]}}`

func TestAuthorizationDenials(t *testing.T) {
	e := fileRealmEnv(t, map[string][]string{
		"consumer": {"ecklink_settings"},
		"ghost":    {"ecklink_settings", "nope"},
		"broken":   {"broken"},
		"fake":     {"superuser"},
		"admin":    {"superuser"},
	})
	runErrCases(t, e, []errCase{
		{name: "consumer cannot create a cross-cluster key", method: "POST", path: "/_security/cross_cluster/api_key", body: ccKeyBody,
			opts: []opt{asUser("consumer")}, status: 403, typ: "security_exception",
			reason: "action [cluster:admin/xpack/security/cross_cluster/api_key/create] is unauthorized for user [consumer] with effective roles [ecklink_settings], this action is granted by the cluster privileges [manage_security,all]"},
		{name: "consumer cannot query keys", method: "POST", path: "/_security/_query/api_key", body: `{}`,
			opts: []opt{asUser("consumer")}, status: 403, typ: "security_exception",
			reason: "action [cluster:admin/xpack/security/api_key/query] is unauthorized for user [consumer] with effective roles [ecklink_settings], this action is granted by the cluster privileges [read_security,manage_api_key,manage_security,all]"},
		{name: "consumer cannot reload secure settings", method: "POST", path: "/_nodes/reload_secure_settings",
			opts: []opt{asUser("consumer")}, status: 403, typ: "security_exception",
			reason: "action [cluster:admin/nodes/reload_secure_settings] is unauthorized for user [consumer] with effective roles [ecklink_settings], this action is granted by the cluster privileges [manage,all]"},
		{name: "unknown roles are named", method: "POST", path: "/_security/cross_cluster/api_key", body: ccKeyBody,
			opts: []opt{asUser("ghost")}, status: 403, typ: "security_exception",
			reason: "action [cluster:admin/xpack/security/cross_cluster/api_key/create] is unauthorized for user [ghost] with effective roles [ecklink_settings] (assigned roles [nope] were not found), this action is granted by the cluster privileges [manage_security,all]"},
		{name: "a role with an unknown privilege is skipped", method: "GET", path: "/_cluster/settings",
			opts: []opt{asUser("broken")}, status: 403, typ: "security_exception",
			reason: "action [cluster:monitor/settings] is unauthorized for user [broken] with effective roles [] (assigned roles [broken] were not found), this action is granted by the cluster privileges [monitor,manage,all]"},
		{name: "a wrong password is 401", method: "GET", path: "/_cluster/settings",
			opts: []opt{withAuth(basic("consumer", "wrong-password"))}, status: 401, typ: "security_exception",
			reason: "unable to authenticate user [consumer] for REST request [/_cluster/settings]"},
		{name: "no elastic user in the files", method: "GET", path: "/",
			opts: []opt{withAuth(basic("nobody", testPassword))}, status: 401, typ: "security_exception",
			reason: "unable to authenticate user [nobody] for REST request [/]"},
	})
}

func TestAuthorizationGrants(t *testing.T) {
	e := fileRealmEnv(t, map[string][]string{
		"consumer": {"ecklink_settings"},
		"exporter": {"ecklink_settings", "ecklink_api_keys"},
		"fake":     {"superuser"}, // the reserved role, not the roles.yml redefinition
	})
	for _, tc := range []struct {
		name, user, method, path, body string
	}{
		{"consumer reads settings", "consumer", "GET", "/_cluster/settings", ""},
		{"consumer writes settings", "consumer", "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.a.mode":"proxy","cluster.remote.a.proxy_address":"h:9443"}}`},
		{"consumer reads remote info", "consumer", "GET", "/_remote/info", ""},
		{"consumer reads nodes", "consumer", "GET", "/_nodes/jvm", ""},
		{"exporter creates keys", "exporter", "POST", "/_security/cross_cluster/api_key", ccKeyBody},
		{"exporter queries keys", "exporter", "POST", "/_security/_query/api_key", `{}`},
		{"superuser from users_roles", "fake", "POST", "/_nodes/reload_secure_settings", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.do(tc.method, tc.path, tc.body, asUser(tc.user)); r.status != 200 {
				t.Errorf("%s %s as %s: %d %s", tc.method, tc.path, tc.user, r.status, r.raw)
			}
		})
	}
	t.Run("authenticate reports the assigned roles", func(t *testing.T) {
		r := e.do("GET", "/_security/_authenticate", "", asUser("exporter"))
		if got := jsonPath(r.body, "roles"); r.status != 200 || len(got.([]any)) != 2 || got.([]any)[0] != "ecklink_api_keys" {
			t.Errorf("authenticate: %d %s", r.status, r.raw)
		}
	})
}

// Only a user with manage_security (or more) may invalidate cross-cluster keys; others get an
// error detail per key and a 200, as TransportInvalidateApiKeyAction answers.
func TestInvalidateCrossClusterKeysNeedsManageSecurity(t *testing.T) {
	e := fileRealmEnv(t, map[string][]string{"exporter": {"ecklink_api_keys"}, "narrow": {"keys_no_invalidate"}})
	r := e.do("POST", "/_security/cross_cluster/api_key", ccKeyBody, asUser("narrow"))
	if r.status != 200 {
		t.Fatalf("create with action-name privileges: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	r = e.do("DELETE", "/_security/api_key", `{"ids":["`+id+`"]}`, asUser("narrow"))
	if r.status != 200 || jsonPath(r.body, "error_count") != 1.0 || len(jsonPath(r.body, "invalidated_api_keys").([]any)) != 0 {
		t.Fatalf("invalidate without manage_security: %d %s", r.status, r.raw)
	}
	want := "Cannot invalidate cross-cluster API key [" + id + "]. This requires [manage_security] cluster privilege or higher"
	if got := jsonPath(r.body, "error_details.0.reason"); got != want || jsonPath(r.body, "error_details.0.type") != "security_exception" {
		t.Errorf("error_details = %s", r.raw)
	}
	if k, _ := e.n.APIKey(id); k.Invalidated {
		t.Fatal("key invalidated without manage_security")
	}
	r = e.do("DELETE", "/_security/api_key", `{"ids":["`+id+`"]}`, asUser("exporter"))
	if r.status != 200 || jsonPath(r.body, "invalidated_api_keys.0") != id || jsonPath(r.body, "error_count") != 0.0 {
		t.Errorf("invalidate with manage_security: %d %s", r.status, r.raw)
	}
}

// A reload of the realm files replaces users, roles and privileges, and clears the cache of
// successful authentications (a changed password fails at once).
func TestFileRealmReload(t *testing.T) {
	e := fileRealmEnv(t, map[string][]string{"agent": {"ecklink_settings"}})
	if r := e.do("GET", "/_cluster/settings", "", asUser("agent")); r.status != 200 {
		t.Fatalf("before reload: %d %s", r.status, r.raw)
	}
	other, err := bcrypt.GenerateFromPassword([]byte("another-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e.n.SetFileRealm([]byte("agent:"+string(other)+"\nbad line\n"), []byte("ecklink_api_keys:agent\n"), []byte(agentRoles))
	if r := e.do("GET", "/_cluster/settings", "", asUser("agent")); r.status != 401 {
		t.Errorf("old password after reload: %d, want 401", r.status)
	}
	agent := withAuth(basic("agent", "another-password"))
	if r := e.do("GET", "/_cluster/settings", "", agent); r.status != 403 {
		t.Errorf("settings with only ecklink_api_keys: %d %s, want 403", r.status, r.raw)
	}
	if r := e.do("POST", "/_security/cross_cluster/api_key", ccKeyBody, agent); r.status != 200 {
		t.Errorf("create key after the role was added: %d %s", r.status, r.raw)
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"cluster:*", "cluster:monitor/main", true},
		{"cluster:admin/settings/update*", "cluster:admin/settings/update", true},
		{"cluster:admin/settings/update*", "cluster:admin/settings/updates", true},
		{"cluster:admin/settings/update*", "cluster:admin/settings/get", false},
		{"cluster:monitor/*", "cluster:admin/settings/update", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*security*", "cluster:admin/xpack/security/api_key/get", true},
		{"", "", true},
		{"", "x", false},
	} {
		if got := wildcardMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
