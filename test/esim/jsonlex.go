package esim

import (
	"strconv"
	"unicode/utf8"
)

// Scalar tokens of the JSON parser: strings (with escapes and UTF-8
// validation) and numbers (JSON grammar, kept as literal text).

func (p *jparser) str() (string, *Error) {
	p.i++ // opening quote
	var out []byte
	for {
		if p.i >= len(p.data) {
			return "", p.fail(p.cur(), "Unexpected end-of-input: was expecting closing quote for a string value")
		}
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c == '\\':
			if p.i+1 >= len(p.data) {
				p.i++
				return "", p.fail(p.cur(), "Unexpected end-of-input in character escape sequence")
			}
			e := p.data[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.fail(p.cur(), "Unexpected character: was expecting hex-digit for character escape sequence")
				}
				if r >= 0xD800 && r < 0xDC00 && p.i+6 <= len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u' {
					p.i += 2
					lo, ok := p.hex4()
					if ok && lo >= 0xDC00 && lo < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", p.fail(p.cur(), "Unrecognized character escape '%c' (code %d)", e, e)
			}
		case c < 0x20:
			return "", p.fail(p.after(), "Illegal unquoted character ((CTRL-CHAR, code %d)): has to be escaped using backslash to be included in string value", c)
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.data[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail(p.after(), "Invalid UTF-8 start byte 0x%02x", c)
			}
			out = append(out, p.data[p.i:p.i+size]...)
			p.i += size
		}
	}
}

func (p *jparser) hex4() (rune, bool) {
	if p.i+4 > len(p.data) {
		p.i = len(p.data)
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.data[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

func (p *jparser) number(at pos) (*jnode, *Error) {
	start := p.i
	if p.data[p.i] == '-' {
		p.i++
		if p.i >= len(p.data) || p.data[p.i] < '0' || p.data[p.i] > '9' {
			if p.i >= len(p.data) {
				return nil, p.fail(p.cur(), "Unexpected end-of-input in a Number value")
			}
			return nil, p.fail(p.after(), "Unexpected character ('%c' (code %d)) in numeric value: expected digit (0-9) to follow minus sign, for valid numeric value", p.data[p.i], p.data[p.i])
		}
	}
	if p.data[p.i] == '0' && p.i+1 < len(p.data) && p.data[p.i+1] >= '0' && p.data[p.i+1] <= '9' {
		return nil, p.fail(p.after(), "Invalid numeric value: Leading zeroes not allowed")
	}
	digits := func() int {
		n := 0
		for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	digits()
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail(p.after(), "Unexpected character in numeric value: Decimal point not followed by a digit")
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail(p.after(), "Unexpected character in numeric value: Exponent indicator not followed by a digit")
		}
	}
	if p.i < len(p.data) && isIdentByte(p.data[p.i]) {
		return nil, p.fail(p.after(), "Unexpected character ('%c' (code %d)): Expected space separating root-level values", p.data[p.i], p.data[p.i])
	}
	return &jnode{kind: jNumber, at: at, s: string(p.data[start:p.i])}, nil
}
