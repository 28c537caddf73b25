package esim

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

type keyPred func(*apiKey) bool

// knownQueries are ES query types that parse but that the API key query
// rejects (ApiKeyBoolQueryBuilder).
var knownQueries = map[string]bool{
	"match_phrase": true, "match_phrase_prefix": true, "multi_match": true, "query_string": true, "fuzzy": true,
	"regexp": true, "nested": true, "has_child": true, "has_parent": true, "constant_score": true, "dis_max": true,
	"function_score": true, "boosting": true, "script": true, "more_like_this": true, "terms_set": true,
	"intervals": true, "combined_fields": true, "match_bool_prefix": true, "match_none": true, "span_term": true,
	"span_near": true, "span_or": true, "span_not": true, "span_first": true, "span_multi": true, "knn": true,
	"pinned": true, "rank_feature": true, "distance_feature": true, "wrapper": true, "percolate": true,
	"geo_shape": true, "geo_distance": true, "geo_bounding_box": true, "geo_polygon": true, "shape": true,
	"parent_id": true, "script_score": true, "semantic": true, "sparse_vector": true, "text_expansion": true,
}

func parsingErr(at pos, format string, args ...any) *Error {
	e := newErr(400, "parsing_exception", format, args...)
	e.Metadata = []Field{{"line", at.line}, {"col", at.col}}
	return e
}

// compileQuery turns the API key query DSL into a predicate. Error texts for
// malformed clauses are modelled on ES's query parsers [mem].
func (n *Node) compileQuery(q *jnode, now time.Time) (keyPred, *Error) {
	if q.kind != jObject {
		return nil, parsingErr(q.at, "[_na] query malformed, must start with start_object")
	}
	if len(q.fields) == 0 {
		return nil, parsingErr(q.at, "query malformed, empty clause found at [%d:%d]", q.at.line, q.at.col)
	}
	if len(q.fields) > 1 {
		return nil, parsingErr(q.fields[1].at, "[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME]", q.fields[0].name)
	}
	f := q.fields[0]
	if f.val.kind != jObject {
		return nil, parsingErr(f.val.at, "[%s] query malformed, no start_object after query name", f.name)
	}
	body := f.val
	switch f.name {
	case "match_all":
		return func(*apiKey) bool { return true }, nil
	case "bool":
		return n.compileBool(body, now)
	case "ids":
		var ids []string
		if v := body.get("values"); v != nil {
			l, err := stringList(v, "ids")
			if err != nil {
				return nil, err
			}
			ids = l
		}
		set := map[string]bool{}
		for _, id := range ids {
			set[id] = true
		}
		return func(k *apiKey) bool { return set[k.id] }, nil
	case "exists":
		fv := body.get("field")
		if fv == nil || fv.kind != jString {
			return nil, parsingErr(body.at, "[exists] must be provided with a [field]")
		}
		_, get, err := n.queryField(fv.s)
		if err != nil {
			return nil, err
		}
		return func(k *apiKey) bool { return len(get(k)) > 0 }, nil
	case "term", "terms", "match", "prefix", "wildcard", "range":
		return n.compileFieldQuery(f.name, body, now)
	case "simple_query_string":
		return n.compileSimpleQueryString(body)
	}
	if knownQueries[f.name] {
		return nil, iae("Query type [%s] is not supported for API Key query", f.name)
	}
	e := parsingErr(f.at, "unknown query [%s]", f.name)
	return nil, e.withCause(newErr(400, "named_object_not_found_exception", "[%d:%d] unknown field [%s]", f.at.line, f.at.col, f.name))
}

func (n *Node) compileBool(body *jnode, now time.Time) (keyPred, *Error) {
	var must, should, not []keyPred
	msm := -1
	for _, f := range body.fields {
		switch f.name {
		case "must", "filter", "should", "must_not":
			items := []*jnode{f.val}
			if f.val.kind == jArray {
				items = f.val.items
			}
			for _, it := range items {
				p, err := n.compileQuery(it, now)
				if err != nil {
					return nil, err
				}
				switch f.name {
				case "must", "filter":
					must = append(must, p)
				case "should":
					should = append(should, p)
				default:
					not = append(not, p)
				}
			}
		case "minimum_should_match":
			s := strings.TrimSuffix(f.val.text(), "%")
			v, err := strconv.Atoi(s)
			if err != nil {
				return nil, iae("failed to parse minimum_should_match [%s]", f.val.text())
			}
			msm = v
		case "boost", "_name", "adjust_pure_negative":
		default:
			return nil, parsingErr(f.at, "[bool] query does not support [%s]", f.name)
		}
	}
	if msm < 0 {
		msm = 0
		if len(must) == 0 && len(should) > 0 {
			msm = 1
		}
	}
	return func(k *apiKey) bool {
		for _, p := range must {
			if !p(k) {
				return false
			}
		}
		for _, p := range not {
			if p(k) {
				return false
			}
		}
		hits := 0
		for _, p := range should {
			if p(k) {
				hits++
			}
		}
		return hits >= msm
	}, nil
}

func (n *Node) compileFieldQuery(typ string, body *jnode, now time.Time) (keyPred, *Error) {
	var field string
	var spec *jnode
	for _, f := range body.fields {
		if f.name == "boost" || f.name == "_name" {
			continue
		}
		if field != "" {
			return nil, parsingErr(f.at, "[%s] query doesn't support multiple fields, found [%s] and [%s]", typ, field, f.name)
		}
		field, spec = f.name, f.val
	}
	if field == "" {
		return nil, iae("[%s] query requires a field", typ)
	}
	kind, get, err := n.queryField(field)
	if err != nil {
		return nil, err
	}
	value := spec
	caseInsensitive := false
	if spec.kind == jObject && typ != "range" {
		value = nil
		for _, key := range []string{"value", "query", "wildcard"} {
			if v := spec.get(key); v != nil {
				value = v
			}
		}
		if ci := spec.get("case_insensitive"); ci != nil {
			caseInsensitive = ci.text() == "true"
		}
		if value == nil {
			return nil, parsingErr(spec.at, "[%s] query malformed, no value specified", typ)
		}
	}
	match := func(want func(any) bool) keyPred {
		return func(k *apiKey) bool {
			for _, v := range get(k) {
				if want(v) {
					return true
				}
			}
			return false
		}
	}
	eqStr := func(a, b string) bool {
		if caseInsensitive {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch typ {
	case "term", "match":
		want, err := coerceValue(kind, value, now)
		if err != nil {
			return nil, err
		}
		return match(func(v any) bool {
			if s, ok := v.(string); ok {
				return eqStr(s, want.(string))
			}
			return compareValues(v, want) == 0
		}), nil
	case "terms":
		if value.kind != jArray {
			return nil, parsingErr(value.at, "[terms] query does not support [%s]", field)
		}
		var wants []any
		for _, it := range value.items {
			w, err := coerceValue(kind, it, now)
			if err != nil {
				return nil, err
			}
			wants = append(wants, w)
		}
		return match(func(v any) bool {
			for _, w := range wants {
				if compareValues(v, w) == 0 {
					return true
				}
			}
			return false
		}), nil
	case "prefix", "wildcard":
		if kind != fkKeyword {
			return nil, iae("Can only use %s queries on keyword and text fields - not on [%s] which is of type [%s]", typ, field, map[int]string{fkDate: "date", fkBool: "boolean"}[kind])
		}
		pat := value.text()
		var re *regexp.Regexp
		if typ == "wildcard" {
			re = wildcardRegexp(pat, caseInsensitive)
		} else {
			flags := ""
			if caseInsensitive {
				flags = "(?i)"
			}
			re = regexp.MustCompile(flags + "^" + regexp.QuoteMeta(pat))
		}
		return match(func(v any) bool { return re.MatchString(v.(string)) }), nil
	default: // range
		return n.compileRange(field, kind, spec, now, match)
	}
}

func (n *Node) compileRange(field string, kind int, spec *jnode, now time.Time, match func(func(any) bool) keyPred) (keyPred, *Error) {
	if spec.kind != jObject {
		return nil, parsingErr(spec.at, "[range] query malformed, after field missing start object")
	}
	type bound struct {
		v   any
		cmp func(int) bool
	}
	var bounds []bound
	for _, f := range spec.fields {
		var cmp func(int) bool
		switch f.name {
		case "gt", "from":
			cmp = func(c int) bool { return c > 0 }
		case "gte":
			cmp = func(c int) bool { return c >= 0 }
		case "lt", "to":
			cmp = func(c int) bool { return c < 0 }
		case "lte":
			cmp = func(c int) bool { return c <= 0 }
		case "format", "time_zone", "boost", "relation", "_name", "include_lower", "include_upper":
			continue
		default:
			return nil, parsingErr(f.at, "[range] query does not support [%s]", f.name)
		}
		if f.val.kind == jNull {
			continue
		}
		v, err := coerceValue(kind, f.val, now)
		if err != nil {
			return nil, err
		}
		bounds = append(bounds, bound{v, cmp})
	}
	return match(func(v any) bool {
		for _, b := range bounds {
			if !b.cmp(compareValues(v, b.v)) {
				return false
			}
		}
		return true
	}), nil
}

func wildcardRegexp(pat string, ci bool) *regexp.Regexp {
	var b strings.Builder
	if ci {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 < len(pat) {
				i++
				b.WriteString(regexp.QuoteMeta(string(pat[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// compileSimpleQueryString is a small subset of simple_query_string: terms
// separated by whitespace, optional trailing "*" for prefix, "-" to negate,
// default_operator or/and, over the given fields (default: all keyword fields).
func (n *Node) compileSimpleQueryString(body *jnode) (keyPred, *Error) {
	q := body.get("query")
	if q == nil {
		return nil, parsingErr(body.at, "[simple_query_string] query text missing")
	}
	fields := []string{"name", "type", "username", "realm_name", "metadata"}
	if fv := body.get("fields"); fv != nil {
		l, err := stringList(fv, "fields")
		if err != nil {
			return nil, err
		}
		fields = l
	}
	var getters []func(*apiKey) []any
	for _, f := range fields {
		kind, get, err := n.queryField(strings.Split(f, "^")[0])
		if err != nil {
			return nil, err
		}
		if kind == fkKeyword {
			getters = append(getters, get)
		}
	}
	and := false
	if op := body.get("default_operator"); op != nil {
		and = strings.EqualFold(op.text(), "and")
	}
	type term struct {
		re  *regexp.Regexp
		neg bool
	}
	var terms []term
	for _, t := range strings.Fields(q.text()) {
		neg := strings.HasPrefix(t, "-")
		t = strings.TrimLeft(t, "+-")
		pat := regexp.QuoteMeta(t)
		if strings.HasSuffix(t, "*") {
			pat = regexp.QuoteMeta(strings.TrimSuffix(t, "*")) + ".*"
		}
		terms = append(terms, term{regexp.MustCompile("(?i)^" + pat + "$"), neg})
	}
	return func(k *apiKey) bool {
		matched := 0
		for _, t := range terms {
			hit := false
			for _, g := range getters {
				for _, v := range g(k) {
					if s, ok := v.(string); ok && t.re.MatchString(s) {
						hit = true
					}
				}
			}
			if hit != t.neg {
				matched++
			} else if and {
				return false
			}
		}
		return len(terms) == 0 || matched > 0
	}, nil
}
