package esim

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// jsonKind is the kind of a parsed JSON value.
type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

// pos is a Jackson-style token location: 1-based line and column.
type pos struct{ line, col int }

// jnode is a parsed JSON value that remembers where it started, keeps object
// field order and keeps number literals as text (as Jackson's parser.text()).
type jnode struct {
	kind   jsonKind
	at     pos
	s      string // string value or number literal
	b      bool
	fields []jfield
	items  []*jnode
}

type jfield struct {
	name string
	at   pos
	val  *jnode
}

// tokenName is the XContentParser.Token name of the value's first token.
func (n *jnode) tokenName() string {
	switch n.kind {
	case jNull:
		return "VALUE_NULL"
	case jBool:
		return "VALUE_BOOLEAN"
	case jNumber:
		return "VALUE_NUMBER"
	case jString:
		return "VALUE_STRING"
	case jObject:
		return "START_OBJECT"
	default:
		return "START_ARRAY"
	}
}

// text is parser.text(): the scalar's textual form.
func (n *jnode) text() string {
	switch n.kind {
	case jBool:
		return strconv.FormatBool(n.b)
	case jNull:
		return "null"
	default:
		return n.s
	}
}

func (n *jnode) get(name string) *jnode {
	if n == nil || n.kind != jObject {
		return nil
	}
	for _, f := range n.fields {
		if f.name == name {
			return f.val
		}
	}
	return nil
}

func (n *jnode) appendJSON(b []byte) []byte {
	switch n.kind {
	case jNull:
		return append(b, "null"...)
	case jBool:
		return strconv.AppendBool(b, n.b)
	case jNumber:
		return append(b, n.s...)
	case jString:
		return appendString(b, n.s)
	case jObject:
		b = append(b, '{')
		for i, f := range n.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.name)
			b = append(b, ':')
			b = f.val.appendJSON(b)
		}
		return append(b, '}')
	default:
		b = append(b, '[')
		for i, it := range n.items {
			if i > 0 {
				b = append(b, ',')
			}
			b = it.appendJSON(b)
		}
		return append(b, ']')
	}
}

// toAny converts to plain Go values (map[string]any keeps no order).
func (n *jnode) toAny() any {
	switch n.kind {
	case jNull:
		return nil
	case jBool:
		return n.b
	case jNumber:
		if i, err := strconv.ParseInt(n.s, 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(n.s, 64)
		return f
	case jString:
		return n.s
	case jObject:
		m := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			m[f.name] = f.val.toAny()
		}
		return m
	default:
		l := make([]any, 0, len(n.items))
		for _, it := range n.items {
			l = append(l, it.toAny())
		}
		return l
	}
}

// maxDepth is Jackson's default StreamReadConstraints max nesting depth.
const maxDepth = 1000

type jparser struct {
	data      []byte
	i         int
	line      int
	lineStart int
	depth     int
}

// parseJSON parses the first JSON value of data. It returns (nil, nil) when
// data holds only whitespace/comments. Trailing content after the first value
// is ignored, as ES only reads the tokens its object parsers ask for.
// Comments are allowed (ES enables Jackson's ALLOW_COMMENTS); duplicate keys
// are rejected (STRICT_DUPLICATE_DETECTION).
//
// Error texts follow Jackson's wording where known, but the exact Jackson
// text (and its "[Source: ...]" suffix) is not reproduced byte for byte.
func parseJSON(data []byte) (*jnode, *Error) {
	p := &jparser{data: data, line: 1}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if p.i >= len(p.data) {
		return nil, nil
	}
	return p.value()
}

func (p *jparser) cur() pos { return pos{p.line, p.i - p.lineStart + 1} }

// after is Jackson's current location after consuming the char at p.i.
func (p *jparser) after() pos { return pos{p.line, p.i - p.lineStart + 2} }

func (p *jparser) fail(at pos, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	cause := newErr(400, "json_parse_exception", "%s\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: %d, column: %d]", msg, at.line, at.col)
	return xcontentErr(at, "%s", msg).withCause(cause)
}

func (p *jparser) unexpected(expect string) *Error {
	if p.i >= len(p.data) {
		return p.fail(p.cur(), "Unexpected end-of-input: %s", expect)
	}
	c := p.data[p.i]
	r, _ := utf8.DecodeRune(p.data[p.i:])
	if c < utf8.RuneSelf && c < 0x20 {
		return p.fail(p.after(), "Illegal character ((CTRL-CHAR, code %d)): only regular white space (\\r, \\n, \\t) is allowed between tokens", c)
	}
	return p.fail(p.after(), "Unexpected character ('%c' (code %d)): %s", r, r, expect)
}

func (p *jparser) skipSpace() *Error {
	for p.i < len(p.data) {
		switch c := p.data[p.i]; c {
		case ' ', '\t', '\r':
			p.i++
		case '\n':
			p.i++
			p.line++
			p.lineStart = p.i
		case '/':
			if p.i+1 >= len(p.data) {
				return p.fail(p.cur(), "Unexpected end-of-input in a comment")
			}
			switch p.data[p.i+1] {
			case '/':
				for p.i < len(p.data) && p.data[p.i] != '\n' {
					p.i++
				}
			case '*':
				p.i += 2
				for {
					if p.i+1 >= len(p.data) {
						p.i = len(p.data)
						return p.fail(p.cur(), "Unexpected end-of-input in a comment")
					}
					if p.data[p.i] == '*' && p.data[p.i+1] == '/' {
						p.i += 2
						break
					}
					if p.data[p.i] == '\n' {
						p.line++
						p.lineStart = p.i + 1
					}
					p.i++
				}
			default:
				p.i++
				return p.fail(p.cur(), "Unexpected character ('%c' (code %d)): was expecting either '*' or '/' for a comment", p.data[p.i], p.data[p.i])
			}
		default:
			return nil
		}
	}
	return nil
}

func (p *jparser) value() (*jnode, *Error) {
	if p.i >= len(p.data) {
		return nil, p.unexpected("expected a value")
	}
	at := p.cur()
	switch c := p.data[p.i]; {
	case c == '{':
		return p.object(at)
	case c == '[':
		return p.array(at)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jnode{kind: jString, at: at, s: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(at)
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		start := p.i
		for p.i < len(p.data) && isIdentByte(p.data[p.i]) {
			p.i++
		}
		word := string(p.data[start:p.i])
		switch word {
		case "true", "false":
			return &jnode{kind: jBool, at: at, b: word == "true"}, nil
		case "null":
			return &jnode{kind: jNull, at: at}, nil
		}
		return nil, p.fail(p.cur(), "Unrecognized token '%s': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')", word)
	default:
		return nil, p.unexpected("expected a value")
	}
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80
}

func (p *jparser) enter() *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail(p.cur(), "Document nesting depth (%d) exceeds the maximum allowed (%d, from `StreamReadConstraints.getMaxNestingDepth()`)", p.depth, maxDepth)
	}
	return nil
}

func (p *jparser) object(at pos) (*jnode, *Error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++
	n := &jnode{kind: jObject, at: at}
	seen := map[string]bool{}
	for first := true; ; first = false {
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.i >= len(p.data) {
			return nil, p.fail(p.cur(), "Unexpected end-of-input: expected close marker for Object (start marker at line: %d, column: %d)", at.line, at.col)
		}
		if p.data[p.i] == '}' && first {
			p.i++
			return n, nil
		}
		if p.data[p.i] != '"' {
			return nil, p.unexpected("was expecting double-quote to start field name")
		}
		fat := p.cur()
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, p.fail(p.cur(), "Duplicate field '%s'", name)
		}
		seen[name] = true
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.i >= len(p.data) || p.data[p.i] != ':' {
			return nil, p.unexpected("was expecting a colon to separate field name and value")
		}
		p.i++
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.fields = append(n.fields, jfield{name: name, at: fat, val: v})
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.i >= len(p.data) {
			return nil, p.fail(p.cur(), "Unexpected end-of-input: expected close marker for Object (start marker at line: %d, column: %d)", at.line, at.col)
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return n, nil
		default:
			return nil, p.unexpected("was expecting comma to separate Object entries")
		}
	}
}

func (p *jparser) array(at pos) (*jnode, *Error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++
	n := &jnode{kind: jArray, at: at}
	for first := true; ; first = false {
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.i >= len(p.data) {
			return nil, p.fail(p.cur(), "Unexpected end-of-input: expected close marker for Array (start marker at line: %d, column: %d)", at.line, at.col)
		}
		if p.data[p.i] == ']' && first {
			p.i++
			return n, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		n.items = append(n.items, v)
		if err := p.skipSpace(); err != nil {
			return nil, err
		}
		if p.i >= len(p.data) {
			return nil, p.fail(p.cur(), "Unexpected end-of-input: expected close marker for Array (start marker at line: %d, column: %d)", at.line, at.col)
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return n, nil
		default:
			return nil, p.unexpected("was expecting comma to separate Array entries")
		}
	}
}
