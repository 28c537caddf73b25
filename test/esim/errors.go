package esim

import (
	"fmt"
	"net/http"
	"strings"
)

// Error is an Elasticsearch exception as it appears on the wire: an error type
// (for example "security_exception"), a reason, an HTTP status, optional
// metadata fields, optional WWW-Authenticate style headers, an optional cause
// and optional suppressed exceptions. It renders exactly like the "error" object
// of an Elasticsearch error response (see Body).
type Error struct {
	// Type is the exception name, e.g. "illegal_argument_exception".
	Type string
	// Reason is the exception message.
	Reason string
	// Status is the HTTP status the exception maps to.
	Status int
	// Metadata are extra fields written after reason, in order
	// (e.g. "additional_unsuccessful_credentials", "line", "col", "resource.id").
	Metadata []Field
	// Header holds response headers that Elasticsearch both sends as HTTP
	// headers and repeats in error.header (only WWW-Authenticate in practice).
	Header map[string][]string
	// CausedBy is the nested cause, if any.
	CausedBy *Error
	// Suppressed are exceptions suppressed by this one (settings validation).
	Suppressed []*Error

	loc pos // parse location of x_content_parse_exceptions, for wrapping
}

// Field is one ordered key/value pair of a JSON object written by esim.
type Field struct {
	Key   string
	Value any
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Type, e.Reason)
}

// esExceptionTypes are the types that extend ElasticsearchException in ES;
// only those take part in root-cause descent (ElasticsearchException.guessRootCauses).
// Plain Java exceptions (illegal_argument_exception, x_content_parse_exception,
// number_format_exception, ...) are their own root cause.
var esExceptionTypes = map[string]bool{
	"security_exception":                  true,
	"parse_exception":                     true,
	"action_request_validation_exception": true,
	"resource_not_found_exception":        true,
	"parsing_exception":                   true,
	"index_not_found_exception":           true,
	"search_phase_execution_exception":    true,
	"exception":                           true,
	"status_exception":                    true,
	"named_object_not_found_exception":    false,
	"x_content_parse_exception":           false,
	"illegal_argument_exception":          false,
	"illegal_state_exception":             false,
	"number_format_exception":             false,
	"json_parse_exception":                false,
}

func (e *Error) rootCause() *Error {
	if !esExceptionTypes[e.Type] {
		return e
	}
	if e.CausedBy != nil && esExceptionTypes[e.CausedBy.Type] {
		return e.CausedBy.rootCause()
	}
	return e
}

// cause renders the exception as an ErrorCause object (type, reason,
// metadata, caused_by, header, suppressed) as ES's generateThrowableXContent.
func (e *Error) cause(withCause bool) obj {
	o := obj{{"type", e.Type}, {"reason", e.Reason}}
	o = append(o, e.Metadata...)
	if withCause && e.CausedBy != nil {
		o = append(o, Field{"caused_by", e.CausedBy.cause(true)})
	}
	if len(e.Header) > 0 {
		h := obj{}
		for _, k := range sortedKeys(e.Header) {
			v := e.Header[k]
			if len(v) == 1 {
				h = append(h, Field{k, v[0]})
			} else {
				h = append(h, Field{k, v})
			}
		}
		o = append(o, Field{"header", h})
	}
	if withCause && len(e.Suppressed) > 0 {
		s := make([]any, 0, len(e.Suppressed))
		for _, x := range e.Suppressed {
			s = append(s, x.cause(true))
		}
		o = append(o, Field{"suppressed", s})
	}
	return o
}

// body returns the full response body object:
// {"error":{"root_cause":[...],"type":...,"reason":...},"status":N}.
func (e *Error) body() obj {
	inner := obj{{"root_cause", []any{e.rootCause().cause(false)}}}
	inner = append(inner, e.cause(true)...)
	return obj{{"error", inner}, {"status", e.Status}}
}

// JSON returns the error rendered as the full Elasticsearch error response
// body: {"error":{"root_cause":[...],"type":...,"reason":...},"status":N}.
func (e *Error) JSON() []byte {
	return appendJSON(nil, e.body())
}

func newErr(status int, typ, format string, args ...any) *Error {
	reason := format
	if len(args) > 0 {
		reason = fmt.Sprintf(format, args...)
	}
	return &Error{Type: typ, Reason: reason, Status: status}
}

func iae(format string, args ...any) *Error {
	return newErr(http.StatusBadRequest, "illegal_argument_exception", format, args...)
}

func parseErr(format string, args ...any) *Error {
	return newErr(http.StatusBadRequest, "parse_exception", format, args...)
}

func xcontentErr(loc pos, format string, args ...any) *Error {
	e := newErr(http.StatusBadRequest, "x_content_parse_exception", format, args...)
	if loc.line > 0 {
		e.Reason = fmt.Sprintf("[%d:%d] %s", loc.line, loc.col, e.Reason)
		e.loc = loc
	}
	return e
}

func notFound(format string, args ...any) *Error {
	return newErr(http.StatusNotFound, "resource_not_found_exception", format, args...)
}

func (e *Error) withCause(c *Error) *Error {
	e.CausedBy = c
	return e
}

// validationErr renders ES's ActionRequestValidationException message:
// "Validation Failed: 1: a;2: b;" [mem for the exact format].
func validationErr(msgs []string) *Error {
	var b strings.Builder
	b.WriteString("Validation Failed: ")
	for i, m := range msgs {
		fmt.Fprintf(&b, "%d: %s;", i+1, m)
	}
	return newErr(http.StatusBadRequest, "action_request_validation_exception", "%s", b.String())
}

// numberFormatErr mimics java.lang.NumberFormatException.forInputString.
func numberFormatErr(s string) *Error {
	return newErr(http.StatusBadRequest, "number_format_exception", "For input string: \"%s\"", s)
}
