package esim

import (
	"net/http"
	"strings"
)

// Authorization as Elasticsearch's RBAC engine does it for the cluster actions esim serves: each
// REST endpoint runs one transport action (its name below), and a user may run it when one of
// its roles has a cluster privilege that grants the action; otherwise the answer is 403
// security_exception "action [<action>] is unauthorized for user [<user>] with effective roles
// [<roles>], this action is granted by the cluster privileges [<privileges>]"
// (AuthorizationDenialMessages.Default.actionDenied in ES 8.x/9.x).
//
// Modelled: cluster privileges (the named ones below and action-name patterns such as
// "cluster:admin/settings/update"), the superuser role, roles from roles.yml, the
// manage_security check of invalidating cross-cluster keys. Not modelled: index privileges (the
// /{index} stub is not authorized), run_as, application privileges, API key role descriptors and
// limited_by (an API key may do what its owner's privileges would not restrict), the request-aware
// manage_own_api_key (it grants nothing here), and the order ES validates a request in relation to
// authorizing it (esim authorizes after parsing, before the action's own validation).

// Transport action names of the endpoints esim serves (ES's *Action.NAME).
const (
	actionMain               = "cluster:monitor/main"
	actionHealth             = "cluster:monitor/health"
	actionGetSettings        = "cluster:monitor/settings"
	actionUpdateSettings     = "cluster:admin/settings/update"
	actionRemoteInfo         = "cluster:monitor/remote/info"
	actionClusterState       = "cluster:monitor/state"
	actionNodesInfo          = "cluster:monitor/nodes/info"
	actionGetLicense         = "cluster:monitor/xpack/license/get"
	actionReloadSecure       = "cluster:admin/nodes/reload_secure_settings"
	actionCreateCrossCluster = "cluster:admin/xpack/security/cross_cluster/api_key/create"
	actionUpdateCrossCluster = "cluster:admin/xpack/security/cross_cluster/api_key/update"
	actionCreateAPIKey       = "cluster:admin/xpack/security/api_key/create"
	actionGetAPIKey          = "cluster:admin/xpack/security/api_key/get"
	actionQueryAPIKey        = "cluster:admin/xpack/security/api_key/query"
	actionInvalidateAPIKey   = "cluster:admin/xpack/security/api_key/invalidate"
)

// namedPrivilege is a cluster privilege of ClusterPrivilegeResolver with its action patterns
// (except: patterns it leaves out).
type namedPrivilege struct {
	name             string
	patterns, except []string
}

// modelledPrivileges grant what ES's do, listed from least to most privileged (the order of the
// "granted by" list in denial messages, ClusterPrivilegeResolver.sortByAccessLevel).
var modelledPrivileges = []namedPrivilege{
	{name: "monitor", patterns: []string{"cluster:monitor/*", "indices:admin/template/get", "indices:admin/index_template/get", "cluster:admin/component_template/get"}},
	{name: "read_security", patterns: []string{actionGetAPIKey, actionQueryAPIKey, "cluster:admin/xpack/security/privilege/get",
		"cluster:admin/xpack/security/privilege/builtin/get", "cluster:admin/xpack/security/role/get", "cluster:admin/xpack/security/role_mapping/get",
		"cluster:admin/xpack/security/user/get", "cluster:admin/xpack/security/user/has_privileges", "cluster:admin/xpack/security/user/list_privileges",
		"cluster:admin/xpack/security/service_account/get", "cluster:admin/xpack/security/service_account/credential/get*"}},
	{name: "manage_api_key", patterns: []string{"cluster:admin/xpack/security/api_key/*"}},
	{name: "manage", patterns: allClusterPatterns, except: []string{securityPattern}},
	{name: "manage_security", patterns: []string{securityPattern}},
	{name: "all", patterns: allClusterPatterns},
}

const securityPattern = "cluster:admin/xpack/security/*"

// allClusterPatterns is ALL_CLUSTER_PATTERN: what "all" grants, and what an action-name
// privilege must fall in.
var allClusterPatterns = []string{"cluster:*", "indices:admin/template/*", "indices:admin/index_template/*"}

// otherPrivileges are ES's other named cluster privileges: roles may name them (they parse) but
// they grant nothing esim serves.
var otherPrivileges = map[string]bool{
	"none": true, "monitor_ml": true, "monitor_text_structure": true, "monitor_data_frame_transforms": true,
	"monitor_transform": true, "monitor_watcher": true, "monitor_rollup": true, "manage_ml": true,
	"manage_data_frame_transforms": true, "manage_transform": true, "manage_token": true, "manage_watcher": true,
	"manage_index_templates": true, "manage_ingest_pipelines": true, "read_pipeline": true, "transport_client": true,
	"manage_saml": true, "manage_oidc": true, "grant_api_key": true, "manage_service_account": true,
	"manage_user_profile": true, "manage_pipeline": true, "manage_rollup": true, "manage_autoscaling": true,
	"manage_ccr": true, "read_ccr": true, "create_snapshot": true, "monitor_snapshot": true, "manage_ilm": true,
	"read_ilm": true, "manage_slm": true, "read_slm": true, "delegate_pki": true, "manage_own_api_key": true,
	"manage_enrich": true, "manage_logstash_pipelines": true, "cancel_task": true, "manage_search_application": true,
	"manage_behavioral_analytics": true, "post_behavioral_analytics_event": true, "cross_cluster_search": true,
	"cross_cluster_replication": true, "monitor_enrich": true, "manage_inference": true, "monitor_inference": true,
	"monitor_stats": true, "manage_esql": true, "monitor_esql": true,
}

// knownClusterPrivilege reports whether ES would accept name in a role's cluster list.
func knownClusterPrivilege(name string) bool {
	if isClusterAction(name) || otherPrivileges[name] {
		return true
	}
	for _, p := range modelledPrivileges {
		if p.name == name {
			return true
		}
	}
	return false
}

// isClusterAction is ClusterPrivilegeResolver.isClusterAction.
func isClusterAction(name string) bool { return matchesAny(allClusterPatterns, name) }

// grants reports whether privilege (a name or an action-name pattern) grants action.
func grants(privilege, action string) bool {
	if isClusterAction(privilege) {
		// An action name stands for itself and everything below it (actionToPattern: name + "*").
		return wildcardMatch(privilege+"*", action)
	}
	for _, p := range modelledPrivileges {
		if p.name == privilege {
			return matchesAny(p.patterns, action) && !matchesAny(p.except, action)
		}
	}
	return false
}

// authorize checks that the caller may run action. API key callers are not checked (their
// role descriptors are not modelled).
func (n *Node) authorize(a *authn, action string) *Error {
	if a == nil || a.isAPIKey() || action == "" {
		return nil
	}
	assigned := n.assignedRoles(a.username)
	effective, privileges, missing := n.resolveRoles(assigned)
	for _, p := range privileges {
		if grants(p, action) {
			return nil
		}
	}
	msg := "action [" + action + "] is unauthorized for user [" + a.username + "] with effective roles [" + strings.Join(effective, ",") + "]"
	if len(missing) > 0 {
		msg += " (assigned roles [" + strings.Join(missing, ",") + "] were not found)"
	}
	var by []string
	for _, p := range modelledPrivileges {
		if grants(p.name, action) {
			by = append(by, p.name)
		}
	}
	if len(by) > 0 {
		msg += ", this action is granted by the cluster privileges [" + strings.Join(by, ",") + "]"
	}
	n.log.Warn("access denied", "user", a.username, "action", action)
	return newErr(http.StatusForbidden, "security_exception", "%s", msg)
}

// impliesManageSecurity is the has-privileges check TransportInvalidateApiKeyAction makes
// before it invalidates cross-cluster keys: do the caller's privileges cover all of
// manage_security? API key callers are not checked.
func (n *Node) impliesManageSecurity(a *authn) bool {
	if a == nil || a.isAPIKey() {
		return true
	}
	_, privileges, _ := n.resolveRoles(n.assignedRoles(a.username))
	for _, p := range privileges {
		switch {
		case p == "all" || p == "manage_security":
			return true
		case isClusterAction(p) && strings.HasPrefix(securityPattern, strings.TrimSuffix(p, "*")):
			// A pattern at or above cluster:admin/xpack/security/ covers it all.
			return true
		}
	}
	return false
}

func matchesAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch is ES's simple wildcard automaton: '*' matches any run, '?' one character.
func wildcardMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for pattern != "" && pattern[0] == '*' {
				pattern = pattern[1:]
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}
