package elastic

import (
	"errors"
	"net/http"
)

// UnreachableError is a request that got no answer from Elasticsearch: the connection was
// refused or dropped, TLS failed, or the answer did not come in time. Find it with errors.As;
// Retryable tells whether trying again may help (a TLS verification failure will not).
type UnreachableError struct {
	Err error
}

func (e *UnreachableError) Error() string { return "elasticsearch unreachable: " + e.Err.Error() }

// Unwrap returns the transport error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Unavailable reports whether err says that Elasticsearch itself cannot serve the agent right
// now: it is unreachable, or it answered 408, 429 or a 5xx status. Errors of anything else (the
// Kubernetes API, a validation) are not; neither are Elasticsearch's refusals (4xx).
func Unavailable(err error) bool {
	if !Retryable(err) {
		return false
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests || ae.Status >= 500)
}
