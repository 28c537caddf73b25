package esim

import (
	"time"
)

const (
	keyTypeRest         = "rest"
	keyTypeCrossCluster = "cross_cluster"
)

// apiKey is a stored API key document.
type apiKey struct {
	id, name     string
	secret       string // never logged
	typ          string
	creation     int64
	expiration   *int64
	invalidated  bool
	invalidation int64
	username     string
	realm        string
	realmType    string
	metadata     *jnode // object or nil ({})
	roleDescs    []namedRole
	access       *ccAccess // cross_cluster keys
	certIdentity *string   // 9.3+
}

// namedRole is a REST key role descriptor, kept as sent (opaque).
type namedRole struct {
	name string
	desc *jnode
}

// APIKeyInfo is a read-only view of an API key.
type APIKeyInfo struct {
	ID   string
	Name string
	// Type is "rest" or "cross_cluster".
	Type         string
	Creation     time.Time
	Expiration   *time.Time // nil: never expires
	Invalidated  bool
	Invalidation *time.Time
	Username     string
	Realm        string
	// Metadata is the key's metadata (never nil).
	Metadata map[string]any
	// Access is set for cross_cluster keys.
	Access *CrossClusterAccess
	// CertificateIdentity is the 9.3+ certificate_identity regex, nil if unset.
	CertificateIdentity *string
}

// Expired reports whether the key is expired at t, as API key authentication
// decides (expiration at or before t).
func (k APIKeyInfo) Expired(t time.Time) bool {
	return k.Expiration != nil && !k.Expiration.After(t)
}

// CrossClusterAccess is the access of a cross-cluster API key.
type CrossClusterAccess struct {
	Search      []IndexAccess
	Replication []IndexAccess
}

// IndexAccess is one search or replication entry.
type IndexAccess struct {
	Names []string
	// Query is the DLS query as the JSON-encoded string ES returns ("" if none).
	Query                  string
	FieldSecurityGrant     []string
	FieldSecurityExcept    []string
	AllowRestrictedIndices bool
}

// APIKey returns a read-only view of the key with the given id.
func (n *Node) APIKey(id string) (APIKeyInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.keys[id]
	if k == nil {
		return APIKeyInfo{}, false
	}
	return k.info(), true
}

// APIKeys returns views of all keys in creation order.
func (n *Node) APIKeys() []APIKeyInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]APIKeyInfo, 0, len(n.keyOrder))
	for _, id := range n.keyOrder {
		out = append(out, n.keys[id].info())
	}
	return out
}

func (k *apiKey) info() APIKeyInfo {
	i := APIKeyInfo{
		ID: k.id, Name: k.name, Type: k.typ, Creation: time.UnixMilli(k.creation),
		Invalidated: k.invalidated, Username: k.username, Realm: k.realm, Metadata: map[string]any{},
	}
	if k.expiration != nil {
		t := time.UnixMilli(*k.expiration)
		i.Expiration = &t
	}
	if k.invalidated {
		t := time.UnixMilli(k.invalidation)
		i.Invalidation = &t
	}
	if k.metadata != nil {
		if m, ok := k.metadata.toAny().(map[string]any); ok {
			i.Metadata = m
		}
	}
	if k.access != nil {
		i.Access = &CrossClusterAccess{Search: k.access.search.public(), Replication: k.access.replication.public()}
	}
	if k.certIdentity != nil {
		s := *k.certIdentity
		i.CertificateIdentity = &s
	}
	return i
}

// render is ApiKey.innerToXContent (plus _sort for the query API).
func (n *Node) renderKey(k *apiKey, withLimitedBy bool, sortValues []any) obj {
	o := obj{{"id", k.id}, {"name", k.name}}
	if n.ver.hasKeyType() {
		o = append(o, Field{"type", k.typ})
	}
	o = append(o, Field{"creation", k.creation})
	if k.expiration != nil {
		o = append(o, Field{"expiration", *k.expiration})
	}
	o = append(o, Field{"invalidated", k.invalidated})
	if k.invalidated && n.ver.hasInvalidationTime() {
		o = append(o, Field{"invalidation", k.invalidation})
	}
	o = append(o, Field{"username", k.username}, Field{"realm", k.realm})
	if n.ver.hasRealmType() {
		o = append(o, Field{"realm_type", k.realmType})
	}
	if k.metadata != nil {
		o = append(o, Field{"metadata", k.metadata})
	} else {
		o = append(o, Field{"metadata", obj{}})
	}
	rd := obj{}
	if k.access != nil {
		rd = append(rd, Field{"cross_cluster", k.access.roleDescriptor(n.ver)})
	} else {
		for _, r := range k.roleDescs {
			rd = append(rd, Field{r.name, normalizeRole(r.desc)})
		}
	}
	o = append(o, Field{"role_descriptors", rd})
	if k.access != nil {
		o = append(o, Field{"access", k.access.render()})
	}
	if k.certIdentity != nil && n.ver.hasCertificateIdentity() {
		o = append(o, Field{"certificate_identity", *k.certIdentity})
	}
	if withLimitedBy && k.typ == keyTypeRest {
		o = append(o, Field{"limited_by", []any{obj{{"superuser", superuserRole()}}}})
	}
	if len(sortValues) > 0 {
		o = append(o, Field{"_sort", sortValues})
	}
	return o
}

// normalizeRole renders a REST key role descriptor with the fields ES always
// writes (cluster, indices, applications, run_as, metadata,
// transient_metadata). Entries inside are kept as sent (not normalized).
func normalizeRole(d *jnode) obj {
	o := obj{}
	defaults := []Field{
		{"cluster", []string{}}, {"indices", []any{}}, {"applications", []any{}}, {"run_as", []string{}},
		{"metadata", obj{}}, {"transient_metadata", obj{{"enabled", true}}},
	}
	seen := map[string]bool{}
	for _, f := range defaults {
		if v := d.get(f.Key); v != nil {
			o = append(o, Field{f.Key, v})
		} else {
			o = append(o, f)
		}
		seen[f.Key] = true
	}
	if d != nil {
		for _, f := range d.fields {
			if !seen[f.name] {
				o = append(o, Field{f.name, f.val})
			}
		}
	}
	return o
}

// superuserRole is the limited_by descriptor of keys owned by superusers [mem].
func superuserRole() obj {
	return obj{
		{"cluster", []string{"all"}},
		{"indices", []any{
			obj{{"names", []string{"*"}}, {"privileges", []string{"all"}}, {"allow_restricted_indices", false}},
			obj{{"names", []string{"*"}}, {"privileges", []string{"monitor", "read", "view_index_metadata", "read_cross_cluster"}}, {"allow_restricted_indices", true}},
		}},
		{"applications", []any{obj{{"application", "*"}, {"privileges", []string{"*"}}, {"resources", []string{"*"}}}}},
		{"run_as", []string{"*"}},
		{"metadata", obj{{"_reserved", true}}},
		{"transient_metadata", obj{}},
	}
}

func (n *Node) storeKeyLocked(k *apiKey) {
	n.keys[k.id] = k
	n.keyOrder = append(n.keyOrder, k.id)
	n.notifyLocked()
}

// isExpiredForUpdate is the update check: expiration strictly before now.
func (k *apiKey) isExpiredForUpdate(nowMs int64) bool {
	return k.expiration != nil && *k.expiration < nowMs
}

// active reports a key that is neither invalidated nor expired.
func (k *apiKey) active(nowMs int64) bool {
	return !k.invalidated && (k.expiration == nil || *k.expiration > nowMs)
}
