package esim

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
)

// superuserRoleName is ES's reserved superuser role (cluster "all"; its index, application and
// run_as grants are not modelled).
const superuserRoleName = "superuser"

// reservedRoles are role names ES reserves: a definition of one of them in roles.yml is ignored
// (FileRolesStore: "role [x] is reserved"). Only superuser grants anything in esim; the others
// are known so that they are reported as effective roles, not as roles that were not found.
var reservedRoles = map[string]bool{
	superuserRoleName: true, "kibana_system": true, "kibana_admin": true, "logstash_system": true,
	"beats_system": true, "apm_system": true, "remote_monitoring_agent": true,
	"remote_monitoring_collector": true, "monitoring_user": true, "viewer": true, "editor": true,
}

// fileRealm is the file realm and the file roles as Elasticsearch loads them from its config
// directory: users ("name:hash" lines), users_roles ("role:user1,user2" lines) and roles.yml.
// ECK aggregates all three into the Secret <es>-es-xpack-file-realm (see pod). ES reloads the
// files when they change (ResourceWatcherService, every 5s by default) and clears its realm
// cache; SetFileRealm stands for that reload.
type fileRealm struct {
	hashes    map[string][]byte   // user -> password hash
	userRoles map[string][]string // user -> role names, sorted
	roles     map[string]roleDef  // from roles.yml
}

// roleDef is a role of roles.yml. Only cluster privileges are modelled; indices, applications,
// run_as, remote_indices and the rest are accepted and grant nothing.
type roleDef struct {
	cluster []string
}

// SetFileRealm replaces the file realm and file roles with the content of ES's users,
// users_roles and roles.yml files, as a node does when the files change on disk. Lines and roles
// ES would skip (malformed lines, unknown privileges, reserved role names) are skipped and
// logged, as ES does; nothing fails the whole load. Users added with SetUser stay.
func (n *Node) SetFileRealm(users, usersRoles, rolesYML []byte) {
	r := &fileRealm{hashes: map[string][]byte{}, userRoles: map[string][]string{}, roles: map[string]roleDef{}}
	for i, line := range fileLines(users) {
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" || hash == "" {
			n.log.Warn(fmt.Sprintf("invalid entry in users file [users], line [%d]. skipping...", i+1))
			continue
		}
		r.hashes[name] = []byte(hash)
	}
	for i, line := range fileLines(usersRoles) {
		role, list, ok := strings.Cut(line, ":")
		if !ok || role == "" {
			n.log.Warn(fmt.Sprintf("invalid entry in users_roles file [users_roles], line [%d]. skipping...", i+1))
			continue
		}
		for _, u := range strings.Split(list, ",") {
			if u = strings.TrimSpace(u); u != "" {
				r.userRoles[u] = append(r.userRoles[u], role)
			}
		}
	}
	for u := range r.userRoles {
		slices.Sort(r.userRoles[u])
	}
	for name, def := range n.parseRoles(rolesYML) {
		r.roles[name] = def
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.realm = r
	// ES clears the realm's cache when its files change.
	n.authCache = map[string][sha256.Size]byte{}
	n.log.Info("file realm loaded", "users", len(r.hashes), "roles", len(r.roles))
}

// fileLines returns the non-empty, non-comment lines of a realm file.
func fileLines(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// parseRoles reads roles.yml. A role that does not parse, names an unknown cluster privilege or
// uses a reserved name is skipped with a log line, as FileRolesStore does.
func (n *Node) parseRoles(data []byte) map[string]roleDef {
	out := map[string]roleDef{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out
	}
	var raw map[string]map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		n.log.Error("failed to parse roles file [roles.yml]", "error", err)
		return out
	}
	for name, body := range raw {
		if reservedRoles[name] {
			n.log.Warn(fmt.Sprintf("role [%s] is reserved. the relevant role definition in the mapping file will be ignored", name))
			continue
		}
		def, err := parseRole(body)
		if err != nil {
			n.log.Error(fmt.Sprintf("invalid role definition [%s] in roles file [roles.yml]. skipping role...", name), "error", err)
			continue
		}
		out[name] = def
	}
	return out
}

func parseRole(body map[string]any) (roleDef, error) {
	var def roleDef
	raw, ok := body["cluster"]
	if !ok || raw == nil {
		return def, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return def, fmt.Errorf("[cluster] must be an array of privileges")
	}
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return def, fmt.Errorf("[cluster] must be an array of strings")
		}
		s = strings.ToLower(s)
		if !knownClusterPrivilege(s) {
			return def, fmt.Errorf("unknown cluster privilege [%s]. a privilege must be either one of the predefined cluster privilege names or a pattern over one of the available cluster actions", s)
		}
		def.cluster = append(def.cluster, s)
	}
	return def, nil
}

// authenticatePassword checks a Basic credential against the SetUser users and the file realm.
// A successful check is cached (ES caches realm authentications, cleared on reload), so the
// bcrypt cost is paid once per password.
func (n *Node) authenticatePassword(user, pass string) bool {
	n.mu.Lock()
	plain, isPlain := n.users[user]
	var hash []byte
	if n.realm != nil {
		hash = n.realm.hashes[user]
	}
	sum := sha256.Sum256([]byte(pass))
	cached, hit := n.authCache[user]
	n.mu.Unlock()
	if isPlain {
		return subtle.ConstantTimeCompare([]byte(plain), []byte(pass)) == 1
	}
	if hash == nil {
		return false
	}
	if hit && subtle.ConstantTimeCompare(cached[:], sum[:]) == 1 {
		return true
	}
	// Only bcrypt hashes ($2a$/$2b$/$2y$, what ECK writes) are modelled; ES also reads PBKDF2
	// and salted SHA hashes.
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	n.mu.Lock()
	n.authCache[user] = sum
	n.mu.Unlock()
	return true
}

// assignedRoles returns a user's roles: superuser for SetUser users, else users_roles.
func (n *Node) assignedRoles(user string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.users[user]; ok {
		return []string{superuserRoleName}
	}
	if n.realm == nil {
		return nil
	}
	return slices.Clone(n.realm.userRoles[user])
}

// resolveRoles splits assigned roles into those that exist (with their cluster privileges) and
// those that were not found.
func (n *Node) resolveRoles(assigned []string) (effective []string, privileges []string, missing []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range assigned {
		switch {
		case r == superuserRoleName:
			effective, privileges = append(effective, r), append(privileges, "all")
		case reservedRoles[r]:
			effective = append(effective, r)
		case n.realm != nil && hasRole(n.realm.roles, r):
			effective = append(effective, r)
			privileges = append(privileges, n.realm.roles[r].cluster...)
		default:
			missing = append(missing, r)
		}
	}
	slices.Sort(effective)
	slices.Sort(missing)
	return effective, privileges, missing
}

func hasRole(roles map[string]roleDef, name string) bool {
	_, ok := roles[name]
	return ok
}
