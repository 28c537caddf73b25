package esim

import (
	"encoding/base64"
	"reflect"
	"regexp"
	"strings"
)

// createPayload is the parsed body of the create endpoints.
type createPayload struct {
	name, expiration *string
	access           *ccAccess
	metadata         *jnode
	roles            []namedRole
	rolesSet         bool
	certIdentity     *string
}

func metadataField(dst **jnode) func(*jnode) *Error {
	return func(v *jnode) *Error { *dst = v; return nil }
}

func stringField(dst **string) func(*jnode) *Error {
	return func(v *jnode) *Error {
		if v.kind == jString {
			s := v.s
			*dst = &s
		}
		return nil
	}
}

// validateCreate is AbstractCreateApiKeyRequest.validate.
func validateCreate(name string, metadata *jnode) []string {
	var msgs []string
	switch {
	case name == "":
		msgs = append(msgs, "api key name is required")
	default:
		if len([]rune(name)) > 256 {
			msgs = append(msgs, "api key name may not be more than 256 characters long")
		}
		if name != strings.TrimFunc(name, func(r rune) bool { return r <= ' ' }) {
			msgs = append(msgs, "api key name may not begin or end with whitespace")
		}
		if strings.HasPrefix(name, "_") {
			msgs = append(msgs, "api key name may not begin with an underscore")
		}
	}
	return append(msgs, validateMetadata(metadata)...)
}

func validateMetadata(metadata *jnode) []string {
	if metadata != nil {
		for _, f := range metadata.fields {
			if strings.HasPrefix(f.name, "_") {
				return []string{"API key metadata keys may not start with [_]"}
			}
		}
	}
	return nil
}

// checkCertIdentity compiles certificate_identity. ES compiles a Java regex;
// esim uses Go's RE2, which rejects some Java constructs (lookaround,
// backreferences, possessive quantifiers) that Java accepts.
func checkCertIdentity(s *string) *Error {
	if s == nil {
		return nil
	}
	if _, err := regexp.Compile(*s); err != nil {
		return iae("Invalid certificate_identity format: [%s]. Must be a valid regex.", *s)
	}
	return nil
}

// parseExpiration runs the parser's builder lambda: TimeValue.parseTimeValue.
func parseExpiration(parser string, s *string) (*timeValue, *Error) {
	if s == nil {
		return nil, nil
	}
	tv, err := parseTimeValue(*s, "expiration")
	if err != nil {
		return nil, buildErr(parser, err)
	}
	return &tv, nil
}

// createCrossClusterKey is POST /_security/cross_cluster/api_key.
func (n *Node) createCrossClusterKey(c *reqCtx) (action, error) {
	if err := n.requireCrossClusterLicense(); err != nil {
		return nil, err
	}
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	const parser = "cross_cluster_api_key_request_payload"
	var p createPayload
	fields := []fieldDecl{
		{"name", tString, stringField(&p.name)},
		{"access", tObject, func(v *jnode) *Error {
			a, err := parseAccess(v)
			p.access = a
			return err
		}},
		{"expiration", tString, stringField(&p.expiration)},
		{"metadata", tObject, metadataField(&p.metadata)},
	}
	if n.ver.hasCertificateIdentity() {
		fields = append(fields, fieldDecl{"certificate_identity", tString, stringField(&p.certIdentity)})
	}
	if err := (&objParser{name: parser, fields: fields}).parse(body); err != nil {
		return nil, err
	}
	var missing []string
	if p.name == nil {
		missing = append(missing, "name")
	}
	if p.access == nil {
		missing = append(missing, "access")
	}
	if len(missing) > 0 {
		return nil, requiredErr(missing)
	}
	exp, err := parseExpiration(parser, p.expiration)
	if err != nil {
		return nil, err
	}
	if err := p.access.build(n.ver); err != nil {
		return nil, err
	}
	if err := checkCertIdentity(p.certIdentity); err != nil {
		return nil, err
	}
	return func() (*response, error) {
		if msgs := validateCreate(*p.name, p.metadata); len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		if c.auth.isAPIKey() {
			return nil, iae("authentication via API key not supported: An API key cannot be used to create a cross-cluster API key")
		}
		k := &apiKey{typ: keyTypeCrossCluster, access: p.access, certIdentity: p.certIdentity}
		return n.finishCreate(c, k, *p.name, exp, p.metadata)
	}, nil
}

// finishCreate stores a new key and renders CreateApiKeyResponse.
func (n *Node) finishCreate(c *reqCtx, k *apiKey, name string, exp *timeValue, metadata *jnode) (*response, error) {
	now := n.now()
	k.id = randomID(15)
	k.secret = randomID(16)
	k.name = name
	k.creation = now.UnixMilli()
	k.metadata = metadata
	k.username, k.realm, k.realmType = c.auth.username, c.auth.realm, c.auth.realmType
	if exp != nil {
		ms, err := expirationMillis(now, *exp)
		if err != nil {
			return nil, err
		}
		k.expiration = &ms
	}
	n.mu.Lock()
	n.storeKeyLocked(k)
	n.mu.Unlock()
	n.log.Info("created API key", "id", k.id, "name", k.name, "type", k.typ)
	o := obj{{"id", k.id}, {"name", k.name}}
	if k.expiration != nil {
		o = append(o, Field{"expiration", *k.expiration})
	}
	encoded := base64.StdEncoding.EncodeToString([]byte(k.id + ":" + k.secret))
	o = append(o, Field{"api_key", k.secret}, Field{"encoded", encoded})
	return ok(o)
}

// createRestKey is POST|PUT /_security/api_key (minimal: role descriptors
// are accepted as opaque objects and do not restrict the key).
func (n *Node) createRestKey(c *reqCtx) (action, error) {
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	const parser = "api_key_request"
	var p createPayload
	fields := []fieldDecl{
		{"name", tString, stringField(&p.name)},
		{"role_descriptors", tObject, func(v *jnode) *Error {
			p.rolesSet = true
			for _, f := range v.fields {
				if f.val.kind != jObject {
					return xcontentErr(f.val.at, "[role_descriptors] can be a single object with any number of fields or an array where each entry is an object with a single field")
				}
				p.roles = append(p.roles, namedRole{f.name, f.val})
			}
			return nil
		}},
		{"expiration", tString, stringField(&p.expiration)},
		{"metadata", tObject, metadataField(&p.metadata)},
	}
	if err := (&objParser{name: parser, fields: fields}).parse(body); err != nil {
		return nil, err
	}
	if p.name == nil {
		return nil, requiredErr([]string{"name"})
	}
	exp, err := parseExpiration(parser, p.expiration)
	if err != nil {
		return nil, err
	}
	if v, set := c.params["refresh"]; set && v != "" && v != "true" && v != "false" && v != "wait_for" {
		return nil, iae("Unknown value for refresh: [%s].", v)
	}
	return func() (*response, error) {
		if msgs := validateCreate(*p.name, p.metadata); len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		if c.auth.isAPIKey() && !emptyRoles(p.roles, p.rolesSet) {
			// [mem] ApiKeyService rule for keys created by keys.
			return nil, iae("creating derived api keys requires an explicit role descriptor that is empty (has no privileges)")
		}
		return n.finishCreate(c, &apiKey{typ: keyTypeRest, roleDescs: p.roles}, *p.name, exp, p.metadata)
	}, nil
}

func emptyRoles(roles []namedRole, set bool) bool {
	if !set || len(roles) == 0 {
		return false
	}
	for _, r := range roles {
		for _, f := range r.desc.fields {
			switch f.name {
			case "cluster", "indices", "applications", "run_as", "remote_indices", "remote_cluster":
				if f.val.kind == jArray && len(f.val.items) > 0 {
					return false
				}
			case "global":
				if f.val.kind == jObject && len(f.val.fields) > 0 {
					return false
				}
			}
		}
	}
	return true
}

// updateCrossClusterKey is PUT /_security/cross_cluster/api_key/{id}.
func (n *Node) updateCrossClusterKey(c *reqCtx) (action, error) {
	if err := n.requireCrossClusterLicense(); err != nil {
		return nil, err
	}
	id := c.pathParams["id"]
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	const parser = "update_cross_cluster_api_key_request_payload"
	var p createPayload
	certSet := false
	fields := []fieldDecl{
		{"access", tObject, func(v *jnode) *Error {
			a, err := parseAccess(v)
			p.access = a
			return err
		}},
		{"expiration", tString, stringField(&p.expiration)},
		{"metadata", tObject, metadataField(&p.metadata)},
	}
	if n.ver.hasCertificateIdentity() {
		fields = append(fields, fieldDecl{"certificate_identity", tStringOrNull, func(v *jnode) *Error {
			certSet = true
			if v.kind == jString {
				s := v.s
				p.certIdentity = &s
			}
			return nil
		}})
	}
	if err := (&objParser{name: parser, fields: fields}).parse(body); err != nil {
		return nil, err
	}
	exp, err := parseExpiration(parser, p.expiration)
	if err != nil {
		return nil, err
	}
	if p.access != nil {
		if err := p.access.build(n.ver); err != nil {
			return nil, err
		}
	}
	if err := checkCertIdentity(p.certIdentity); err != nil {
		return nil, err
	}
	return func() (*response, error) {
		msgs := validateMetadata(p.metadata)
		if p.access == nil && p.metadata == nil && !certSet {
			if n.ver.hasCertificateIdentity() {
				msgs = append(msgs, "must update  [access] or [metadata] or [certificate_identity] for cross-cluster API keys")
			} else {
				msgs = append(msgs, "must update either [access] or [metadata] for cross-cluster API keys")
			}
		}
		if len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		if c.auth.isAPIKey() {
			return nil, iae("authentication via API key not supported: only the owner user can update an API key")
		}
		return n.applyUpdate(c, id, &p, certSet, exp)
	}, nil
}

func (n *Node) applyUpdate(c *reqCtx, id string, p *createPayload, certSet bool, exp *timeValue) (*response, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.keys[id]
	if k == nil || k.username != c.auth.username || k.realm != c.auth.realm {
		return nil, notFound("no API key owned by requesting user found for ID [%s]", id)
	}
	switch {
	case k.invalidated:
		return nil, iae("cannot update invalidated API key [%s]", id)
	case k.isExpiredForUpdate(now.UnixMilli()):
		return nil, iae("cannot update expired API key [%s]", id)
	case k.typ != keyTypeCrossCluster:
		return nil, iae("cannot update API key of type [%s] while expected type is [%s]", k.typ, keyTypeCrossCluster)
	}
	changed := false
	if p.access != nil && string(appendJSON(nil, p.access.render())) != string(appendJSON(nil, k.access.render())) {
		k.access, changed = p.access, true
	}
	if p.metadata != nil && !reflect.DeepEqual(p.metadata.toAny(), metadataAny(k.metadata)) {
		k.metadata, changed = p.metadata, true
	}
	if certSet && !reflect.DeepEqual(p.certIdentity, k.certIdentity) {
		k.certIdentity, changed = p.certIdentity, true
	}
	if exp != nil {
		ms, err := expirationMillis(now, *exp)
		if err != nil {
			return nil, err
		}
		if k.expiration == nil || *k.expiration != ms {
			k.expiration, changed = &ms, true
		}
	}
	if changed {
		n.notifyLocked()
		n.log.Info("updated API key", "id", id)
	}
	return ok(obj{{"updated", changed}})
}

func metadataAny(m *jnode) any {
	if m == nil {
		return map[string]any{}
	}
	return m.toAny()
}
