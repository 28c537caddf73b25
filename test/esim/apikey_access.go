package esim

// Cross-cluster API key access: parsing (CrossClusterApiKeyRoleDescriptorBuilder
// and RoleDescriptor.parseIndex) and rendering (role_descriptors.cross_cluster
// and access).

const ccRole = "cross_cluster"

var (
	ccsIndexPrivileges = []string{"read", "read_cross_cluster", "view_index_metadata"}
	ccrIndexPrivileges = []string{"cross_cluster_replication", "cross_cluster_replication_internal"}
)

type indexPriv struct {
	names           []string
	query           *string
	grant, except   []string
	hasFieldSec     bool
	allowRestricted bool
}

type privList []indexPriv

type ccAccess struct {
	search, replication privList
}

// usesDLSOrFLS is IndicesPrivileges.isUsingDocumentOrFieldLevelSecurity:
// a grant of exactly ["*"] is not FLS.
func (p indexPriv) usesDLSOrFLS() bool {
	if p.query != nil || len(p.except) > 0 {
		return true
	}
	if p.grant != nil {
		return !(len(p.grant) == 1 && p.grant[0] == "*")
	}
	return false
}

func rolePE(format string, args ...any) *Error {
	return parseErr("failed to parse indices privileges for role ["+ccRole+"]. "+format, args...)
}

// parseAccess parses the "access" object. Structural errors come back as
// x_content_parse_exception chains; build() checks the semantics.
func parseAccess(v *jnode) (*ccAccess, *Error) {
	acc := &ccAccess{}
	entries := func(field string, dst *privList) func(*jnode) *Error {
		return func(v *jnode) *Error {
			items := []*jnode{v}
			if v.kind == jArray {
				items = v.items
			}
			for _, it := range items {
				p, err := parseIndexPriv(field, it)
				if err != nil {
					if err.loc.line == 0 {
						err.loc = it.at
					}
					return err
				}
				*dst = append(*dst, p)
			}
			return nil
		}
	}
	op := &objParser{name: "cross_cluster_api_key_request_access", fields: []fieldDecl{
		{"search", tObjectArray, entries("search", &acc.search)},
		{"replication", tObjectArray, entries("replication", &acc.replication)},
	}}
	if err := op.parse(v); err != nil {
		return nil, err
	}
	return acc, nil
}

func parseIndexPriv(field string, v *jnode) (indexPriv, *Error) {
	var p indexPriv
	if v.kind != jObject {
		return p, rolePE("expected field [%s] value to be an array of objects, but found an array element of type [%s]", field, v.tokenName())
	}
	for _, f := range v.fields {
		val := f.val
		switch f.name {
		case "names":
			switch val.kind {
			case jString:
				p.names = []string{val.s}
			case jArray:
				names, err := readStringArray(f.name, val)
				if err != nil {
					return p, err
				}
				if len(names) == 0 {
					return p, rolePE("[names] cannot be an empty array")
				}
				p.names = names
			default:
				return p, rolePE("expected field [names] value to be a string or an array of strings, but found [%s] instead", val.tokenName())
			}
		case "allow_restricted_indices":
			switch val.kind {
			case jBool:
				p.allowRestricted = val.b
			case jNull:
				p.allowRestricted = false
			default:
				return p, rolePE("expected field [allow_restricted_indices] value to be a boolean, but found [%s] instead", val.tokenName())
			}
		case "query":
			switch val.kind {
			case jObject:
				q := string(val.appendJSON(nil))
				p.query = &q
			case jString:
				if val.s != "" {
					q := val.s
					p.query = &q
				}
			case jNull:
			default:
				return p, rolePE("expected field [query] value to be null, a string, an array, or an object, but found [%s] instead", val.tokenName())
			}
		case "field_security":
			if err := parseFieldSecurity(&p, val); err != nil {
				return p, err
			}
		case "privileges":
			return p, rolePE("field [privileges] must not present") // [mem]
		default:
			return p, rolePE("unexpected field [%s]", f.name)
		}
	}
	if p.names == nil {
		return p, rolePE("missing required [names] field")
	}
	return p, nil
}

func parseFieldSecurity(p *indexPriv, val *jnode) *Error {
	if val.kind != jObject {
		return rolePE("expected START_OBJECT or START_ARRAY but got %s in \"field_security\".", val.tokenName())
	}
	if len(val.fields) == 0 {
		return rolePE("\"field_security\" must not be empty.")
	}
	p.hasFieldSec = true
	for _, f := range val.fields {
		switch f.name {
		case "grant", "except":
			if f.val.kind == jNull {
				return rolePE("%s must not be null.", f.name)
			}
			l, err := readStringArray(f.name, f.val)
			if err != nil {
				return err
			}
			if f.name == "grant" {
				p.grant = l
			} else {
				p.except = l
			}
		default:
			return rolePE("\"field_security\" only accepts options grant and except, but got: %s", f.name)
		}
	}
	return nil
}

// readStringArray is RoleDescriptor.readStringArray (XContentUtils wrapped
// with the role name).
func readStringArray(field string, v *jnode) ([]string, *Error) {
	wrap := func(e *Error) *Error { return parseErr("failed to parse role [%s]", ccRole).withCause(e) }
	if v.kind != jArray {
		return nil, wrap(parseErr("could not parse [%s] field. expected a string array but found [%s] value instead", field, v.tokenName()))
	}
	out := make([]string, 0, len(v.items))
	for _, it := range v.items {
		if it.kind != jString {
			return nil, wrap(parseErr("could not parse [%s] field. expected a string value but found [%s] instead", field, it.tokenName()))
		}
		out = append(out, it.s)
	}
	return out, nil
}

// build is CrossClusterApiKeyRoleDescriptorBuilder.build(): its
// IllegalArgumentExceptions are plain 400s (thrown in the REST handler).
func (a *ccAccess) build(v esVersion) *Error {
	if len(a.search) == 0 && len(a.replication) == 0 {
		return iae("must specify non-empty access for either [search] or [replication]")
	}
	for _, p := range a.replication {
		if p.usesDLSOrFLS() {
			return iae("replication does not support document or field level security")
		}
	}
	if v.rejectsSearchDLSWithCCR() && len(a.replication) > 0 {
		for _, p := range a.search {
			if p.usesDLSOrFLS() {
				return iae("search does not support document or field level security if replication is assigned")
			}
		}
	}
	return nil
}

func (p indexPriv) render(privileges []string) obj {
	o := obj{{"names", p.names}}
	if privileges != nil {
		o = append(o, Field{"privileges", privileges})
	}
	if p.grant != nil || p.except != nil {
		fs := obj{}
		if p.grant != nil {
			fs = append(fs, Field{"grant", p.grant})
		}
		if p.except != nil {
			fs = append(fs, Field{"except", p.except})
		}
		o = append(o, Field{"field_security", fs})
	}
	if p.query != nil {
		o = append(o, Field{"query", *p.query})
	}
	return append(o, Field{"allow_restricted_indices", p.allowRestricted})
}

func (a *ccAccess) render() obj {
	o := obj{}
	for _, part := range []struct {
		name string
		l    privList
	}{{"search", a.search}, {"replication", a.replication}} {
		if len(part.l) == 0 {
			continue
		}
		items := make([]any, 0, len(part.l))
		for _, p := range part.l {
			items = append(items, p.render(nil))
		}
		o = append(o, Field{part.name, items})
	}
	return o
}

func (a *ccAccess) roleDescriptor(v esVersion) obj {
	var cluster []string
	if len(a.search) > 0 {
		cluster = append(cluster, "cross_cluster_search")
		if v.hasMonitorEnrich() {
			cluster = append(cluster, "monitor_enrich")
		}
	}
	if len(a.replication) > 0 {
		cluster = append(cluster, "cross_cluster_replication")
	}
	indices := make([]any, 0, len(a.search)+len(a.replication))
	for _, p := range a.search {
		indices = append(indices, p.render(ccsIndexPrivileges))
	}
	for _, p := range a.replication {
		indices = append(indices, p.render(ccrIndexPrivileges))
	}
	return obj{
		{"cluster", cluster}, {"indices", indices}, {"applications", []any{}}, {"run_as", []string{}},
		{"metadata", obj{}}, {"transient_metadata", obj{{"enabled", true}}},
	}
}

func (l privList) public() []IndexAccess {
	out := make([]IndexAccess, 0, len(l))
	for _, p := range l {
		ia := IndexAccess{Names: append([]string(nil), p.names...), AllowRestrictedIndices: p.allowRestricted,
			FieldSecurityGrant: append([]string(nil), p.grant...), FieldSecurityExcept: append([]string(nil), p.except...)}
		if p.query != nil {
			ia.Query = *p.query
		}
		out = append(out, ia)
	}
	return out
}
