package esim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// negotiation is the outcome of reading Accept/Content-Type.
type negotiation struct {
	contentType string // response content type
	err         *Error // media_type_header_exception, sent before routing
}

type mediaType struct {
	typ, sub string
	params   map[string]string
}

// parseMediaType parses "type/subtype; k=v" the way ES's ParsedMediaType
// does, loosely. ok is false for malformed values.
func parseMediaType(s string) (mediaType, bool) {
	parts := strings.Split(s, ";")
	ts := strings.TrimSpace(parts[0])
	typ, sub, found := strings.Cut(ts, "/")
	if !found || typ == "" || sub == "" || strings.ContainsAny(ts, " \t") {
		return mediaType{}, false
	}
	mt := mediaType{typ: strings.ToLower(typ), sub: strings.ToLower(sub), params: map[string]string{}}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, found := strings.Cut(p, "=")
		if !found {
			return mediaType{}, false
		}
		mt.params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return mt, true
}

// compatVersion returns the compatible-with version of a vendor media type, 0 if none.
func (m mediaType) compatVersion() (int, bool) {
	v, ok := m.params["compatible-with"]
	if !ok {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

func mediaHeaderErr(cause *Error, headers ...string) *Error {
	return newErr(400, "media_type_header_exception", "Invalid media-type value on headers [%s]", strings.Join(headers, ", ")).withCause(cause)
}

// negotiate reads Accept and Content-Type as RestRequest's constructor does:
// malformed values and unsupported compatible-with versions are a 400
// media_type_header_exception sent before routing and authentication.
func negotiate(r *http.Request, major int) negotiation {
	neg := negotiation{contentType: "application/json"}
	hasBody := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
	var acceptV, ctV int
	var acceptCompat, ctCompat bool
	if a := r.Header.Get("Accept"); a != "" {
		first, _, _ := strings.Cut(a, ",")
		mt, ok := parseMediaType(first)
		if !ok {
			neg.err = mediaHeaderErr(iae("invalid media-type [%s]", a), "Accept")
			return neg
		}
		if strings.HasPrefix(mt.sub, "vnd.elasticsearch+") {
			acceptCompat = true
			acceptV, ok = mt.compatVersion()
			if !ok {
				neg.err = mediaHeaderErr(iae("invalid media-type [%s]", a), "Accept")
				return neg
			}
			neg.contentType = fmt.Sprintf("application/vnd.elasticsearch+json;compatible-with=%d", acceptV)
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, ok := parseMediaType(ct)
		if !ok {
			neg.err = mediaHeaderErr(iae("invalid media-type [%s]", ct), "Content-Type")
			return neg
		}
		if strings.HasPrefix(mt.sub, "vnd.elasticsearch+") {
			ctCompat = true
			if ctV, ok = mt.compatVersion(); !ok {
				neg.err = mediaHeaderErr(iae("invalid media-type [%s]", ct), "Content-Type")
				return neg
			}
		}
	}
	return neg.withCompatCheck(r, major, acceptCompat, ctCompat, acceptV, ctV, hasBody)
}

// withCompatCheck is RestCompatibleVersionHelper: the node's major and
// major-1 are accepted, and Accept and Content-Type must agree.
func (neg negotiation) withCompatCheck(r *http.Request, major int, acceptCompat, ctCompat bool, acceptV, ctV int, hasBody bool) negotiation {
	bad := func(v int) bool { return v != major && v != major-1 }
	var msg string
	switch {
	case acceptCompat && bad(acceptV):
		msg = fmt.Sprintf("Accept version must be either version %d or %d, but found %d. Accept=%s", major, major-1, acceptV, r.Header.Get("Accept"))
	case ctCompat && hasBody && bad(ctV):
		msg = fmt.Sprintf("Content-Type version must be either version %d or %d, but found %d. Content-Type=%s", major, major-1, ctV, r.Header.Get("Content-Type"))
	case hasBody && acceptCompat && ctCompat && acceptV != ctV,
		hasBody && ctCompat && !acceptCompat && r.Header.Get("Accept") != "" && r.Header.Get("Accept") != "*/*":
		msg = fmt.Sprintf("A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version and the compatible versions must match. Accept=%s, Content-Type=%s", r.Header.Get("Accept"), r.Header.Get("Content-Type"))
	default:
		return neg
	}
	neg.err = mediaHeaderErr(newErr(400, "status_exception", "%s", msg), "Accept", "Content-Type")
	return neg
}

// checkContentType is RestController's check for requests with a body:
// a missing or unsupported Content-Type is a 406 simple error. esim only
// parses JSON, so YAML, CBOR and Smile (which ES accepts) are refused too.
func checkContentType(r *http.Request) *response {
	cts := r.Header.Values("Content-Type")
	if len(cts) == 0 {
		return &response{status: 406, body: obj{{"error", "Content-Type header is missing"}, {"status", 406}}}
	}
	mt, ok := parseMediaType(cts[0])
	supported := ok && mt.typ == "application" && (mt.sub == "json" || mt.sub == "x-ndjson" ||
		mt.sub == "vnd.elasticsearch+json" || mt.sub == "vnd.elasticsearch+x-ndjson")
	if !supported {
		return &response{status: 406, body: obj{{"error", "Content-Type header [" + strings.Join(cts, ",") + "] is not supported"}, {"status", 406}}}
	}
	return nil
}

// decodeQuery is RestUtils.decodeQueryString: "&"-separated, "+" is a space,
// the last value of a repeated name wins. Bad escapes are a 400
// bad_parameter_exception sent before routing.
func decodeQuery(raw string) (map[string]string, *Error) {
	out := map[string]string{}
	if raw == "" {
		return out, nil
	}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := decodeComponent(k)
		if err != nil {
			return nil, err
		}
		dv, err := decodeComponent(v)
		if err != nil {
			return nil, err
		}
		out[dk] = dv
	}
	return out, nil
}

func decodeComponent(s string) (string, *Error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	bad := func(msg string) *Error {
		cause := iae("%s", msg)
		return newErr(400, "bad_parameter_exception", "java.lang.IllegalArgumentException: %s", msg).withCause(cause)
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i == len(s)-1 {
				return "", bad("unterminated escape sequence at end of string: " + s)
			}
			i++
			if s[i] == '%' {
				b = append(b, '%')
				continue
			}
			if i == len(s)-1 {
				return "", bad("partial escape sequence at end of string: " + s)
			}
			h, err := strconv.ParseUint(s[i:i+2], 16, 8)
			if err != nil {
				return "", bad(fmt.Sprintf("invalid escape sequence `%%%s' at index %d of: %s", s[i:i+2], i-1, s))
			}
			b = append(b, byte(h))
			i++
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

func itoa(i int) string { return strconv.Itoa(i) }
