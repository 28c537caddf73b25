package esim

import (
	"sort"
	"strings"
)

// tokenSet is the set of first tokens a declared field accepts
// (ObjectParser.ValueType in ES).
type tokenSet uint8

const (
	tString              tokenSet = iota // STRING: VALUE_STRING
	tStringOrNull                        // STRING_OR_NULL
	tObject                              // OBJECT: START_OBJECT
	tObjectArray                         // OBJECT_ARRAY: START_OBJECT, START_ARRAY
	tStringArray                         // STRING_ARRAY: START_ARRAY, VALUE_STRING
	tBoolean                             // BOOLEAN: VALUE_BOOLEAN, VALUE_STRING
	tInt                                 // INT: VALUE_NUMBER, VALUE_STRING
	tAny                                 // anything (custom parsing)
	tObjectOrString                      // custom: object or string
	tObjectArrayOrString                 // custom: object, array or string (sort)
)

func (t tokenSet) accepts(k jsonKind) bool {
	switch t {
	case tString:
		return k == jString
	case tStringOrNull:
		return k == jString || k == jNull
	case tObject:
		return k == jObject
	case tObjectArray:
		return k == jObject || k == jArray
	case tStringArray:
		return k == jArray || k == jString
	case tBoolean:
		return k == jBool || k == jString
	case tInt:
		return k == jNumber || k == jString
	case tObjectOrString:
		return k == jObject || k == jString
	case tObjectArrayOrString:
		return k == jObject || k == jArray || k == jString
	default:
		return true
	}
}

// fieldDecl declares one field of an objParser.
type fieldDecl struct {
	name  string
	accep tokenSet
	parse func(v *jnode) *Error
}

// objParser mimics ES's ObjectParser/ConstructingObjectParser with unknown
// fields rejected: it produces the same error texts ("[name] unknown field
// [x] did you mean [y]?", "[name] f doesn't support values of type: T",
// "[name] failed to parse field [f]").
type objParser struct {
	name   string
	fields []fieldDecl
}

func (op *objParser) parse(n *jnode) *Error {
	if n == nil {
		return xcontentErr(pos{1, 1}, "[%s] Expected START_OBJECT but was: null", op.name)
	}
	if n.kind != jObject {
		return xcontentErr(n.at, "[%s] Expected START_OBJECT but was: %s", op.name, n.tokenName())
	}
	for _, f := range n.fields {
		d := op.decl(f.name)
		if d == nil {
			return xcontentErr(f.at, "[%s] unknown field [%s]%s", op.name, f.name, suggest(f.name, op.names(), " did you mean "))
		}
		if !d.accep.accepts(f.val.kind) {
			return xcontentErr(f.val.at, "[%s] %s doesn't support values of type: %s", op.name, f.name, f.val.tokenName())
		}
		if err := d.parse(f.val); err != nil {
			at := f.val.at
			if err.loc.line > 0 {
				at = err.loc
			}
			return xcontentErr(at, "[%s] failed to parse field [%s]", op.name, f.name).withCause(err)
		}
	}
	return nil
}

func (op *objParser) decl(name string) *fieldDecl {
	for i := range op.fields {
		if op.fields[i].name == name {
			return &op.fields[i]
		}
	}
	return nil
}

func (op *objParser) names() []string {
	out := make([]string, 0, len(op.fields))
	for _, f := range op.fields {
		out = append(out, f.name)
	}
	return out
}

// requiredErr is ConstructingObjectParser's "Required [a, b]" (an
// IllegalArgumentException, so a plain 400 illegal_argument_exception).
func requiredErr(missing []string) *Error {
	return iae("Required [%s]", strings.Join(missing, ", "))
}

// buildErr is ConstructingObjectParser's wrapping of an exception thrown by
// the builder once all fields are parsed [mem: the exact wording].
func buildErr(parser string, cause *Error) *Error {
	return xcontentErr(pos{}, "Failed to build [%s] after last required field arrived", parser).withCause(cause)
}

// suggest returns ES's "did you mean" suffix (SuggestingErrorOnUnknown /
// BaseRestHandler.unrecognized): candidates with Lucene Levenshtein
// similarity > 0.5, best first, ties by name. lead is " did you mean " or
// " -> did you mean ".
func suggest(unknown string, candidates []string, lead string) string {
	type scored struct {
		d float64
		s string
	}
	var list []scored
	seen := map[string]bool{}
	for _, c := range candidates {
		if seen[c] {
			continue
		}
		seen[c] = true
		if d := levenshteinSimilarity(unknown, c); d > 0.5 {
			list = append(list, scored{d, c})
		}
	}
	if len(list) == 0 {
		return ""
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].d != list[j].d {
			return list[i].d > list[j].d
		}
		return list[i].s < list[j].s
	})
	if len(list) == 1 {
		return lead + "[" + list[0].s + "]?"
	}
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = s.s
	}
	return lead + "any of [" + strings.Join(names, ", ") + "]?"
}

// levenshteinSimilarity is Lucene's LevenshteinDistance.getDistance:
// 1 - distance / max(len).
func levenshteinSimilarity(target, other string) float64 {
	a, b := []rune(target), []rune(other)
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		if n == m {
			return 1
		}
		return 0
	}
	p := make([]int, n+1)
	d := make([]int, n+1)
	for i := 0; i <= n; i++ {
		p[i] = i
	}
	for j := 1; j <= m; j++ {
		tj := b[j-1]
		d[0] = j
		for i := 1; i <= n; i++ {
			cost := 1
			if a[i-1] == tj {
				cost = 0
			}
			d[i] = min(d[i-1]+1, p[i]+1, p[i-1]+cost)
		}
		p, d = d, p
	}
	return 1 - float64(p[n])/float64(max(n, m))
}

// stringList reads a VALUE_STRING or an array of strings.
func stringList(v *jnode, what string) ([]string, *Error) {
	if v.kind == jString {
		return []string{v.s}, nil
	}
	if v.kind != jArray {
		return nil, xcontentErr(v.at, "%s doesn't support values of type: %s", what, v.tokenName())
	}
	out := make([]string, 0, len(v.items))
	for _, it := range v.items {
		if it.kind != jString && it.kind != jNumber && it.kind != jBool {
			return nil, xcontentErr(it.at, "[%s] expected a string array but found [%s]", what, it.tokenName())
		}
		out = append(out, it.text())
	}
	return out, nil
}
