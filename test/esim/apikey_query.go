package esim

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// queryAPIKeys is GET|POST /_security/_query/api_key.
func (n *Node) queryAPIKeys(c *reqCtx) (action, error) {
	withLimitedBy, err := c.boolParam("with_limited_by", false)
	if err != nil {
		return nil, err
	}
	if _, err := c.boolParam("with_profile_uid", false); err != nil {
		return nil, err
	}
	if _, err := c.boolParam("typed_keys", false); err != nil {
		return nil, err
	}
	var query, sortSpec, searchAfter, aggs *jnode
	from, size := int64(0), int64(10)
	if len(c.body) > 0 {
		body, err := parseJSON(c.body)
		if err != nil {
			return nil, err
		}
		intField := func(dst *int64) func(*jnode) *Error {
			return func(v *jnode) *Error {
				i, err := coerceInt(v)
				*dst = i
				return err
			}
		}
		keep := func(dst **jnode) func(*jnode) *Error { return func(v *jnode) *Error { *dst = v; return nil } }
		op := &objParser{name: "query_api_key_request_payload", fields: []fieldDecl{
			{"query", tObject, keep(&query)},
			{"from", tInt, intField(&from)},
			{"size", tInt, intField(&size)},
			{"sort", tObjectArrayOrString, keep(&sortSpec)},
			{"search_after", tAny, keep(&searchAfter)},
			{"aggs", tObject, keep(&aggs)},
			{"aggregations", tObject, keep(&aggs)},
		}}
		if err := op.parse(body); err != nil {
			return nil, err
		}
	}
	now := n.now()
	pred := func(*apiKey) bool { return true }
	if query != nil {
		p, err := n.compileQuery(query, now)
		if err != nil {
			return nil, err
		}
		pred = p
	}
	sorts, err := n.parseSort(sortSpec)
	if err != nil {
		return nil, err
	}
	if aggs != nil && len(aggs.fields) > 0 {
		// esim does not implement aggregations.
		f := aggs.fields[0]
		typ := "unknown"
		if f.val.kind == jObject && len(f.val.fields) > 0 {
			typ = f.val.fields[0].name
		}
		return nil, iae("Unsupported API Keys agg [%s] of type [%s]", f.name, typ)
	}
	return func() (*response, error) {
		var msgs []string
		if from < 0 {
			msgs = append(msgs, "[from] parameter cannot be negative but was ["+strconv.FormatInt(from, 10)+"]")
		}
		if size < 0 {
			msgs = append(msgs, "[size] parameter cannot be negative but was ["+strconv.FormatInt(size, 10)+"]")
		}
		if len(msgs) > 0 {
			return nil, validationErr(msgs)
		}
		if from+size > 10000 {
			return nil, iae("Result window is too large, from + size must be less than or equal to: [10000] but was [%d]. "+
				"See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.", from+size)
		}
		return n.runQuery(pred, sorts, searchAfter, from, size, withLimitedBy)
	}, nil
}

type hit struct {
	k    *apiKey
	doc  int
	sort []any
}

func (n *Node) runQuery(pred func(*apiKey) bool, sorts []sortField, searchAfter *jnode, from, size int64, withLimitedBy bool) (*response, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var hits []hit
	for i, id := range n.keyOrder {
		k := n.keys[id]
		if !pred(k) {
			continue
		}
		h := hit{k: k, doc: i}
		for _, s := range sorts {
			h.sort = append(h.sort, s.value(k, i))
		}
		hits = append(hits, h)
	}
	if len(sorts) > 0 {
		sort.SliceStable(hits, func(i, j int) bool { return compareSort(sorts, hits[i].sort, hits[j].sort) < 0 })
	}
	if searchAfter != nil {
		if len(sorts) == 0 {
			return nil, iae("Sort must contain at least one field.")
		}
		if searchAfter.kind != jArray || len(searchAfter.items) != len(sorts) {
			return nil, iae("search_after has %d value(s) but sort has %d.", len(searchAfter.items), len(sorts))
		}
		after := make([]any, len(sorts))
		for i, it := range searchAfter.items {
			after[i] = sorts[i].coerce(it)
		}
		var kept []hit
		for _, h := range hits {
			if compareSort(sorts, h.sort, after) > 0 {
				kept = append(kept, h)
			}
		}
		hits = kept
	}
	total := len(hits)
	keys := []any{}
	for i := from; i < int64(len(hits)) && i < from+size; i++ {
		keys = append(keys, n.renderKey(hits[i].k, withLimitedBy, hits[i].sort))
	}
	return ok(obj{{"total", total}, {"count", len(keys)}, {"api_keys", keys}})
}

// coerceInt is XContentParser.intValue(coerce=true).
func coerceInt(v *jnode) (int64, *Error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v.s), 64)
	if err != nil {
		return 0, numberFormatErr(v.s)
	}
	if f < math.MinInt32 || f > math.MaxInt32 {
		return 0, iae("Value [%s] is out of range for an integer", v.s)
	}
	return int64(f), nil
}

// Field kinds of the queryable API key fields.
const (
	fkKeyword = iota
	fkDate
	fkBool
)

// queryField resolves a public field name (ApiKeyFieldNameTranslators).
func (n *Node) queryField(name string) (kind int, get func(*apiKey) []any, err *Error) {
	kw := func(f func(*apiKey) string) func(*apiKey) []any {
		return func(k *apiKey) []any { return []any{f(k)} }
	}
	switch name {
	case "name":
		return fkKeyword, kw(func(k *apiKey) string { return k.name }), nil
	case "type":
		return fkKeyword, kw(func(k *apiKey) string { return k.typ }), nil
	case "username":
		return fkKeyword, kw(func(k *apiKey) string { return k.username }), nil
	case "realm_name":
		return fkKeyword, kw(func(k *apiKey) string { return k.realm }), nil
	case "creation":
		return fkDate, func(k *apiKey) []any { return []any{k.creation} }, nil
	case "expiration":
		return fkDate, func(k *apiKey) []any {
			if k.expiration == nil {
				return nil
			}
			return []any{*k.expiration}
		}, nil
	case "invalidated":
		return fkBool, func(k *apiKey) []any { return []any{k.invalidated} }, nil
	case "invalidation":
		return fkDate, func(k *apiKey) []any {
			if !k.invalidated {
				return nil
			}
			return []any{k.invalidation}
		}, nil
	}
	if name == "metadata" || strings.HasPrefix(name, "metadata.") {
		path := strings.TrimPrefix(strings.TrimPrefix(name, "metadata"), ".")
		return fkKeyword, func(k *apiKey) []any { return flattenedValues(k.metadata, path) }, nil
	}
	if n.ver.atLeast(8, 13) {
		return 0, nil, iae("Field [%s] is not allowed for querying or aggregation", name)
	}
	return 0, nil, iae("Field [%s] is not allowed for API Key query", name)
}

// flattenedValues are the leaf values of a flattened field at path ("" for all).
func flattenedValues(m *jnode, path string) []any {
	var out []any
	var walk func(prefix string, v *jnode)
	walk = func(prefix string, v *jnode) {
		switch v.kind {
		case jObject:
			for _, f := range v.fields {
				p := f.name
				if prefix != "" {
					p = prefix + "." + f.name
				}
				walk(p, f.val)
			}
		case jArray:
			for _, it := range v.items {
				walk(prefix, it)
			}
		case jNull:
		default:
			if path == "" || prefix == path {
				out = append(out, v.text())
			}
		}
	}
	if m != nil {
		walk("", m)
	}
	return out
}

// coerceValue converts a query value to the field's kind.
func coerceValue(kind int, v *jnode, now time.Time) (any, *Error) {
	switch kind {
	case fkDate:
		ms, ok := parseDateMillis(v.text(), now)
		if !ok {
			return nil, parseErr("failed to parse date field [%s] with format [epoch_millis]", v.text())
		}
		return ms, nil
	case fkBool:
		if v.kind == jBool {
			return v.b, nil
		}
		switch v.text() {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
		return nil, iae("Can't parse boolean value [%s], expected [true] or [false]", v.text())
	default:
		return v.text(), nil
	}
}
