package elastic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 1 << 20

// APIError is an error answered by Elasticsearch (or by something in front of
// it): the HTTP status and, when the body is an Elasticsearch error, its type
// and reason. Find it with errors.As.
type APIError struct {
	// Status is the HTTP status code. It is 0 for per-item errors reported
	// inside a 2xx answer (error_details, reload_exception).
	Status int
	// Type is the Elasticsearch exception type, e.g.
	// "resource_not_found_exception"; empty when the body was not an
	// Elasticsearch error.
	Type string
	// Reason is the human-readable reason Elasticsearch gave.
	Reason string
}

// Error renders the status, type and reason.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("elasticsearch")
	if e.Status != 0 {
		fmt.Fprintf(&b, " returned %d", e.Status)
	}
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is a 409 answer.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsBadRequest reports whether err is a 400 answer (validation and parse
// errors: retrying the same request will not help).
func IsBadRequest(err error) bool { return hasStatus(err, http.StatusBadRequest) }

// IsUnauthorized reports whether err is a 401 answer (wrong or stale
// credentials).
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports whether err is a 403 answer, or a per-item
// security_exception (missing privilege).
func IsForbidden(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status == http.StatusForbidden || (ae.Status == 0 && ae.Type == "security_exception")
}

// UserNotReady reports an error of the agent's own Elasticsearch user rather than of the
// request: its Secret does not exist yet (ErrUserNotProvisioned), or Elasticsearch does not know
// it yet (401: ECK's aggregated file realm has not reached the nodes, which takes the kubelet's
// sync period). Both clear by themselves; a 403 (a role not loaded, or taken away) is IsForbidden.
func UserNotReady(err error) bool {
	return errors.Is(err, ErrUserNotProvisioned) || IsUnauthorized(err)
}

// ErrorType returns the Elasticsearch exception type of err, or "".
func ErrorType(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Type
	}
	return ""
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// Retryable reports whether the same request may succeed later without any
// change: 408, 429 and 5xx answers, timeouts and connection errors. Errors
// Elasticsearch answered with a 4xx status, TLS verification failures and a
// failed product check are not retryable; neither is context.Canceled.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify) {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true // timeouts, dial/read/write failures (*net.OpError, *url.Error)
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// esErrorBody is Elasticsearch's error envelope. "error" is an object, or a
// plain string in a few old code paths (e.g. 405 answers).
type esErrorBody struct {
	Error  json.RawMessage `json:"error"`
	Status int             `json:"status"`
}

// errorCause is ES's ErrorCause, reduced to what callers act on.
type errorCause struct {
	Type      string       `json:"type"`
	Reason    string       `json:"reason"`
	RootCause []errorCause `json:"root_cause"`
}

// toAPIError converts an ErrorCause found inside a 2xx answer.
func (c errorCause) toAPIError() *APIError {
	ae := &APIError{Type: c.Type, Reason: c.Reason}
	if ae.Type == "" && ae.Reason == "" && len(c.RootCause) > 0 {
		ae.Type, ae.Reason = c.RootCause[0].Type, c.RootCause[0].Reason
	}
	return ae
}

// decodeError turns a non-2xx answer into an *APIError. Bodies that are not
// Elasticsearch errors (proxies, load balancers) are not echoed: only the
// status text is kept.
func decodeError(status int, body io.Reader) *APIError {
	ae := &APIError{Status: status, Reason: http.StatusText(status)}
	raw, err := io.ReadAll(io.LimitReader(body, maxErrorBody))
	if err != nil || len(raw) == 0 {
		return ae
	}
	var env esErrorBody
	if json.Unmarshal(raw, &env) != nil || len(env.Error) == 0 {
		return ae
	}
	var s string
	if json.Unmarshal(env.Error, &s) == nil {
		ae.Reason = s
		return ae
	}
	var cause errorCause
	if json.Unmarshal(env.Error, &cause) != nil {
		return ae
	}
	c := cause.toAPIError()
	if c.Type != "" || c.Reason != "" {
		ae.Type, ae.Reason = c.Type, c.Reason
	}
	return ae
}

// multiError joins errors on one line; errors.Is and errors.As see each.
type multiError []error

func (m multiError) Error() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (m multiError) Unwrap() []error { return m }

// asAPIError finds the first *APIError in err's chain.
func asAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}
