package esim

import (
	"math"
	"strconv"
	"strings"
)

// Sorting of the API key query API: sort specs, sort values (_sort) and
// search_after comparison.

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		y, _ := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	}
	return 0
}

type sortField struct {
	field string
	desc  bool
	kind  int
	get   func(*apiKey) []any
}

func (n *Node) parseSort(v *jnode) ([]sortField, *Error) {
	if v == nil {
		return nil, nil
	}
	items := []*jnode{v}
	if v.kind == jArray {
		items = v.items
	}
	var out []sortField
	add := func(name string, order *jnode) *Error {
		sf := sortField{field: name}
		if order != nil {
			o := order
			if order.kind == jObject {
				o = order.get("order")
			}
			if o != nil {
				switch strings.ToLower(o.text()) {
				case "asc":
				case "desc":
					sf.desc = true
				default:
					return iae("Unknown SortOrder [%s]", o.text())
				}
			}
		}
		if name == "_doc" {
			sf.kind = fkKeyword
			out = append(out, sf)
			return nil
		}
		kind, get, err := n.queryField(name)
		if err != nil {
			return err
		}
		sf.kind, sf.get = kind, get
		out = append(out, sf)
		return nil
	}
	for _, it := range items {
		switch it.kind {
		case jString:
			if err := add(it.s, nil); err != nil {
				return nil, err
			}
		case jObject:
			for _, f := range it.fields {
				if err := add(f.name, f.val); err != nil {
					return nil, err
				}
			}
		default:
			return nil, newErr(400, "parsing_exception", "malformed sort format, within the sort array, an object, or an actual string are allowed")
		}
	}
	return out, nil
}

// value is the sort value of a key: the min (asc) or max (desc) of its
// values; missing values sort last (Long.MAX_VALUE/MIN_VALUE for dates, null
// for keywords, as ES renders them in _sort).
func (s sortField) value(k *apiKey, doc int) any {
	if s.get == nil {
		return int64(doc)
	}
	vals := s.get(k)
	if len(vals) == 0 {
		if s.kind == fkDate {
			if s.desc {
				return int64(math.MinInt64)
			}
			return int64(math.MaxInt64)
		}
		return nil
	}
	best := vals[0]
	for _, v := range vals[1:] {
		c := compareValues(v, best)
		if (!s.desc && c < 0) || (s.desc && c > 0) {
			best = v
		}
	}
	return best
}

func (s sortField) coerce(v *jnode) any {
	if v.kind == jNull {
		return nil
	}
	if s.get == nil || s.kind == fkDate {
		i, _ := strconv.ParseInt(v.text(), 10, 64)
		return i
	}
	if s.kind == fkBool {
		return v.text() == "true"
	}
	return v.text()
}

func compareSort(sorts []sortField, a, b []any) int {
	for i, s := range sorts {
		var c int
		switch {
		case a[i] == nil && b[i] == nil:
			c = 0
		case a[i] == nil:
			return 1 // missing last
		case b[i] == nil:
			return -1
		default:
			c = compareValues(a[i], b[i])
		}
		if s.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
