package wiring

import "strings"

// location is where a dotted setting lives in a nodeSet config, which may mix the flat
// ("a.b.c: v") and nested ("a: {b: {c: v}}") forms, as elasticsearch.yml allows.
type location struct {
	m   map[string]any
	key string
}

func (l location) get() any    { return l.m[l.key] }
func (l location) set(v any)   { l.m[l.key] = v }
func (l location) delete()     { delete(l.m, l.key) }
func (l location) valid() bool { return l.m != nil }

// lookup finds a dotted setting in cfg in any mix of flat and nested forms.
func lookup(cfg map[string]any, key string) location {
	return lookupParts(cfg, strings.Split(key, "."))
}

func lookupParts(m map[string]any, parts []string) location {
	for i := len(parts); i >= 1; i-- {
		k := strings.Join(parts[:i], ".")
		v, ok := m[k]
		if !ok {
			continue
		}
		if i == len(parts) {
			return location{m: m, key: k}
		}
		if sub, ok := v.(map[string]any); ok {
			if loc := lookupParts(sub, parts[i:]); loc.valid() {
				return loc
			}
		}
	}
	return location{}
}

// stringList reads a list setting; ES also accepts a single string.
func stringList(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		out := make([]string, 0, len(t))
		for _, item := range t {
			s, ok := item.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case []string:
		return t, true
	default:
		return nil, false
	}
}

func toAnyList(in []string) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}

func isTrue(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return t == "true"
	default:
		return false
	}
}
