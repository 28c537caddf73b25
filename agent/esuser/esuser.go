// Package esuser gives the agent its own user in every Elasticsearch it works with, through
// ECK's own mechanisms, so that it never needs the elastic superuser (which
// spec.auth.disableElasticUser removes):
//
//   - Secret <es>-ecklink-roles holds roles.yml with the two roles below, referenced from
//     spec.auth.roles;
//   - Secret <es>-ecklink-user (kubernetes.io/basic-auth: username, a password generated here,
//     roles) is the user, referenced from spec.auth.fileRealm. ECK hashes the password (bcrypt)
//     itself; the password exists only in this Secret, which the agent owns.
//
// Each user gets only the roles its cluster's use needs: RoleSettings on every cluster with a
// RemoteCluster or a ClusterExport, RoleAPIKeys only on exported clusters. The user and its
// Secrets go when the cluster has neither any more.
//
// What ECK 3.5 does with them (read in its source, pkg/controller/elasticsearch/user:
// reconcileUserProvidedFileRealm, reconcileUserProvidedRoles, realmFromBasicAuthSecret,
// reconcileRolesFileRealmSecret): it watches the referenced Secrets and aggregates them, with its
// own users (elastic unless disabled, its internal users) and roles, into the Secret
// <es>-es-xpack-file-realm (keys users, users_roles, roles.yml). Every pod mounts that Secret
// (volume elastic-internal-xpack-file-realm) and the init container links the three files into
// the config directory, where Elasticsearch's file realm and file roles store watch them and
// reload on change (resource.reload.interval.high, 5s by default), once the kubelet has updated
// the mounted Secret. The pod template's config hash (nodespec/podspec.go) covers the node
// configuration, the scripts and the keystore, not spec.auth or these Secrets: adding the user,
// changing its roles or removing it restarts no Elasticsearch node. It takes effect within the
// kubelet's sync period (about a minute) plus 5s; until then Elasticsearch answers 401 (unknown
// user) or 403 (role not loaded), which the agent reports and retries.
//
// Wiring spec.auth is an edit of the Elasticsearch spec, made like agent/wiring's: once, by
// read-modify-write with the resourceVersion, adding only the agent's entries (recorded in the
// annotation wiring.AnnotationAuth) and removing only those. When a RemoteCluster of the
// Elasticsearch asks for manual wiring, the agent leaves the resource alone and the entries go
// into the RemoteCluster's wiring snippet (see Auth).
package esuser

import (
	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
)

// Username is the agent's user in every Elasticsearch.
const Username = "ecklink-agent"

// Role names of roles.yml.
const (
	RoleSettings = "ecklink_settings"
	RoleAPIKeys  = "ecklink_api_keys"
)

// roles are the agent's roles, exactly as roles.yml defines them. Each privilege is there for a
// call the agent makes, and none is wider than that call needs:
//
// RoleSettings, on every cluster the agent configures:
//   - monitor (read-only): GET _cluster/settings (action cluster:monitor/settings), GET
//     _remote/info (cluster:monitor/remote/info), GET _nodes/jvm (cluster:monitor/nodes/info,
//     node start times: has a node restarted with the new keystore?), GET _license
//     (cluster:monitor/xpack/license/get, the license preflight, docs/elasticsearch-facts.md).
//   - cluster:admin/settings/update: PUT _cluster/settings (cluster.remote.<alias>.* and the
//     strong-identity signing settings). The docs of the cluster update settings API ask for the
//     manage privilege, which also grants snapshots, shutdowns, reroutes and every other cluster
//     admin action; Elasticsearch also takes a cluster action name as a privilege
//     (ClusterPrivilegeResolver.resolve: an action name is a pattern over that action), which
//     grants this one action and nothing else. ECK's own roles use action names the same way.
//     The agent never calls POST _nodes/reload_secure_settings, so it is not granted.
//
// RoleAPIKeys, only on clusters with a ClusterExport (of either model: a certificate-model export
// still invalidates the keys of an earlier API-key answer):
//   - manage_security: creating and updating cross-cluster API keys needs it ("To use this API,
//     you must have at least the manage_security cluster privilege", create and update
//     cross-cluster API key API docs), and so does invalidating them: "The manage_api_key
//     privilege allows deleting any REST API key, but not cross cluster API keys" (invalidate API
//     key docs); TransportInvalidateApiKeyAction skips cross-cluster keys unless the caller has
//     manage_security. No narrower set works: the create and update actions alone could be
//     granted by action name, invalidation cannot. It also lets the agent list and invalidate the
//     keys a previous user (elastic, in 0.1.0 installs) created. manage_security is a powerful
//     privilege (it can create users and roles): that is why only exported clusters get it.
var roles = map[string]roleDescriptor{
	RoleSettings: {Cluster: []string{"monitor", "cluster:admin/settings/update"}},
	RoleAPIKeys:  {Cluster: []string{"manage_security"}},
}

// roleDescriptor is a role of roles.yml; the agent needs cluster privileges only.
type roleDescriptor struct {
	Cluster []string `json:"cluster"`
}

// RolesYML renders roles.yml.
func RolesYML() []byte {
	out, err := yaml.Marshal(roles)
	if err != nil {
		panic("esuser: roles do not render: " + err.Error())
	}
	return out
}

// RolesSecretName is the Secret holding roles.yml for es.
func RolesSecretName(es string) string { return es + "-ecklink-roles" }

// Auth is what spec.auth of es must name for the agent's user.
func Auth(es string) wiring.Auth {
	return wiring.Auth{FileRealm: elastic.UserSecretName(es), Roles: RolesSecretName(es)}
}
