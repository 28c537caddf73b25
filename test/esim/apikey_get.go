package esim

import (
	"net/http"
	"strings"
)

// nameMatches is the api key name filter of GET and DELETE: "*" (or empty)
// matches all, a trailing "*" is a prefix match, anything else exact.
func nameMatches(pattern, name string) bool {
	switch {
	case pattern == "" || pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(name, pattern[:len(pattern)-1])
	default:
		return pattern == name
	}
}

func (n *Node) getKeyParams() []string {
	p := []string{"id", "name", "owner", "realm_name", "username"}
	if n.ver.hasWithLimitedBy() {
		p = append(p, "with_limited_by")
	}
	if n.ver.hasActiveOnly() {
		p = append(p, "active_only")
	}
	if n.ver.hasProfileUID() {
		p = append(p, "with_profile_uid")
	}
	return p
}

// getAPIKeys is GET /_security/api_key.
func (n *Node) getAPIKeys(c *reqCtx) (action, error) {
	id, name := c.params["id"], c.params["name"]
	username, realm := c.params["username"], c.params["realm_name"]
	owner, err := c.boolParam("owner", false)
	if err != nil {
		return nil, err
	}
	withLimitedBy, err := c.boolParam("with_limited_by", false)
	if err != nil {
		return nil, err
	}
	activeOnly, err := c.boolParam("active_only", false)
	if err != nil {
		return nil, err
	}
	if _, err := c.boolParam("with_profile_uid", false); err != nil {
		return nil, err
	}
	return func() (*response, error) {
		var msgs []string
		if id != "" && name != "" {
			msgs = append(msgs, "only one of [api key id, api key name] can be specified")
		}
		if (id != "" || name != "") && (realm != "" || username != "") {
			msgs = append(msgs, "username or realm name must not be specified when the api key id or api key name is specified")
		}
		if owner && (realm != "" || username != "") {
			msgs = append(msgs, "neither username nor realm-name may be specified when retrieving owned API keys")
		}
		if len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		nowMs := n.now().UnixMilli()
		n.mu.Lock()
		defer n.mu.Unlock()
		keys := []any{}
		for _, kid := range n.keyOrder {
			k := n.keys[kid]
			switch {
			case id != "" && k.id != id,
				!nameMatches(name, k.name),
				username != "" && k.username != username,
				realm != "" && k.realm != realm,
				activeOnly && !k.active(nowMs),
				owner && c.auth.isAPIKey() && k.id != c.auth.key.id,
				owner && !c.auth.isAPIKey() && (k.username != c.auth.username || k.realm != c.auth.realm):
				continue
			}
			keys = append(keys, n.renderKey(k, withLimitedBy, nil))
		}
		resp := &response{status: 200, body: obj{{"api_keys", keys}}}
		// RestGetApiKeyAction: 404 when an id was given and nothing matched.
		if id != "" && len(keys) == 0 {
			resp.status = 404
		}
		return resp, nil
	}, nil
}

// invalidatePayload is InvalidateApiKeyRequest as parsed from the body.
type invalidatePayload struct {
	realm, username, name, id *string
	owner                     bool
	ids                       []string
	idsSet                    bool
}

// stringArrayField is declareStringArray: a single string or an array of
// scalars (p.text()); null or object elements fail.
func stringArrayField(dst *[]string, set *bool) func(*jnode) *Error {
	return func(v *jnode) *Error {
		*set = true
		items := []*jnode{v}
		if v.kind == jArray {
			items = v.items
		}
		out := []string{}
		for _, it := range items {
			switch it.kind {
			case jString, jNumber, jBool:
				out = append(out, it.text())
			case jArray:
				return newErr(400, "illegal_state_exception", "expected value but got [START_ARRAY]")
			default:
				return newErr(400, "illegal_state_exception", "Can't get text on a %s at %d:%d", it.tokenName(), it.at.line, it.at.col)
			}
		}
		*dst = out
		return nil
	}
}

func boolField(dst *bool) func(*jnode) *Error {
	return func(v *jnode) *Error {
		if v.kind == jBool {
			*dst = v.b
			return nil
		}
		b, err := parseESBool(v.s)
		if err != nil {
			return err
		}
		*dst = b
		return nil
	}
}

// invalidateAPIKeys is DELETE /_security/api_key.
func (n *Node) invalidateAPIKeys(c *reqCtx) (action, error) {
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var p invalidatePayload
	op := &objParser{name: "invalidate_api_key", fields: []fieldDecl{
		{"realm_name", tString, stringField(&p.realm)},
		{"username", tString, stringField(&p.username)},
		{"name", tString, stringField(&p.name)},
		{"owner", tBoolean, boolField(&p.owner)},
		{"ids", tStringArray, stringArrayField(&p.ids, &p.idsSet)},
		{"id", tString, stringField(&p.id)},
	}}
	if err := op.parse(body); err != nil {
		return nil, err
	}
	if p.id != nil {
		if p.idsSet {
			return nil, buildErr("invalidate_api_key", iae("Must use either [id] or [ids], not both at the same time"))
		}
		p.ids, p.idsSet = []string{*p.id}, true
	}
	return func() (*response, error) {
		if msgs := p.validate(); len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		return ok(n.invalidate(c, &p))
	}, nil
}

func hasText(s *string) bool { return s != nil && strings.TrimSpace(*s) != "" }

// validate is InvalidateApiKeyRequest.validate.
func (p *invalidatePayload) validate() []string {
	var msgs []string
	if !hasText(p.realm) && !hasText(p.username) && !p.idsSet && !hasText(p.name) && !p.owner {
		msgs = append(msgs, "One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false")
	}
	if (p.idsSet || hasText(p.name)) && (hasText(p.realm) || hasText(p.username)) {
		msgs = append(msgs, "username or realm name must not be specified when the api key id(s) or api key name are specified")
	}
	if p.owner && (hasText(p.realm) || hasText(p.username)) {
		msgs = append(msgs, "neither username nor realm-name may be specified when invalidating owned API keys")
	}
	if p.idsSet && hasText(p.name) {
		msgs = append(msgs, "only one of [api key id(s), api key name] can be specified")
	}
	if p.idsSet {
		if len(p.ids) == 0 {
			msgs = append(msgs, "Field [ids] cannot be an empty array")
		} else {
			var blank []string
			for i, id := range p.ids {
				if strings.TrimSpace(id) == "" {
					blank = append(blank, itoa(i))
				}
			}
			if len(blank) > 0 {
				msgs = append(msgs, "Field [ids] must not contain blank id, but got blank id at index position: ["+strings.Join(blank, ", ")+"]")
			}
		}
	}
	return msgs
}

// invalidate marks the matching active keys invalidated. Already-invalidated
// and unknown keys are not found by ES's lookup, so they are simply absent
// from the response.
func (n *Node) invalidate(c *reqCtx, p *invalidatePayload) obj {
	now := n.now().UnixMilli()
	ids := map[string]bool{}
	for _, id := range p.ids {
		ids[id] = true
	}
	// Cross-cluster keys need manage_security "or higher" (TransportInvalidateApiKeyAction's
	// has-privileges check); without it they are skipped, each with an error detail.
	crossCluster := n.impliesManageSecurity(c.auth)
	n.mu.Lock()
	defer n.mu.Unlock()
	done := []string{}
	var failed []any
	for _, kid := range n.keyOrder {
		k := n.keys[kid]
		switch {
		case k.invalidated,
			p.idsSet && !ids[k.id],
			p.name != nil && !nameMatches(*p.name, k.name),
			hasText(p.username) && k.username != *p.username,
			hasText(p.realm) && k.realm != *p.realm,
			p.owner && c.auth.isAPIKey() && k.id != c.auth.key.id,
			p.owner && !c.auth.isAPIKey() && (k.username != c.auth.username || k.realm != c.auth.realm):
			continue
		case k.typ == keyTypeCrossCluster && !crossCluster:
			failed = append(failed, newErr(http.StatusForbidden, "security_exception",
				"Cannot invalidate cross-cluster API key [%s]. This requires [manage_security] cluster privilege or higher", k.id).cause(true))
			continue
		}
		k.invalidated, k.invalidation = true, now
		done = append(done, k.id)
	}
	if len(done) > 0 {
		n.notifyLocked()
		n.log.Info("invalidated API keys", "ids", strings.Join(done, ","))
	}
	out := obj{{"invalidated_api_keys", done}, {"previously_invalidated_api_keys", []string{}}, {"error_count", len(failed)}}
	if len(failed) > 0 {
		out = append(out, Field{"error_details", failed})
	}
	return out
}
