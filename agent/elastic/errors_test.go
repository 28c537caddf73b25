package elastic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecodeError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   APIError
	}{
		{
			name: "elasticsearch", status: 404,
			body: `{"error":{"root_cause":[{"type":"resource_not_found_exception","reason":"no API key owned by requesting user found for ID [x]"}],"type":"resource_not_found_exception","reason":"no API key owned by requesting user found for ID [x]"},"status":404}`,
			want: APIError{Status: 404, Type: "resource_not_found_exception", Reason: "no API key owned by requesting user found for ID [x]"},
		},
		{
			name: "root cause only", status: 400,
			body: `{"error":{"root_cause":[{"type":"parse_exception","reason":"request body is required"}]},"status":400}`,
			want: APIError{Status: 400, Type: "parse_exception", Reason: "request body is required"},
		},
		{
			name: "string error", status: 405, body: `{"error":"Incorrect HTTP method for uri [/] and method [DELETE], allowed: [HEAD, GET]","status":405}`,
			want: APIError{Status: 405, Reason: "Incorrect HTTP method for uri [/] and method [DELETE], allowed: [HEAD, GET]"},
		},
		{name: "html from a proxy", status: 503, body: `<html>upstream password=hunter2</html>`, want: APIError{Status: 503, Reason: "Service Unavailable"}},
		{name: "empty", status: 502, want: APIError{Status: 502, Reason: "Bad Gateway"}},
		{name: "get api key 404", status: 404, body: `{"api_keys":[]}`, want: APIError{Status: 404, Reason: "Not Found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeError(tt.status, strings.NewReader(tt.body))
			if *got != tt.want {
				t.Errorf("decodeError = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// errorServer answers every request with status and body, as Elasticsearch
// would (product header on 2xx only matters for the check).
func errorServer(status int, body string, product bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if product {
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
}

func TestRetryable(t *testing.T) {
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name      string
		handler   http.Handler // nil: connection refused
		timeout   time.Duration
		cancel    bool
		retryable bool
		check     func(error) bool
	}{
		{name: "429", handler: errorServer(429, `{"error":{"type":"es_rejected_execution_exception","reason":"rejected"},"status":429}`, true), retryable: true},
		{name: "503 html", handler: errorServer(503, `<html>down</html>`, false), retryable: true},
		{name: "500", handler: errorServer(500, `{"error":{"type":"exception","reason":"boom"},"status":500}`, true), retryable: true},
		{name: "408", handler: errorServer(408, `{}`, true), retryable: true},
		{name: "400", handler: errorServer(400, `{"error":{"type":"illegal_argument_exception","reason":"bad"},"status":400}`, true), check: IsBadRequest},
		{name: "401", handler: errorServer(401, `{"error":{"type":"security_exception","reason":"unable to authenticate user [elastic] for REST request [/]"},"status":401}`, true), check: IsUnauthorized},
		{name: "403", handler: errorServer(403, `{"error":{"type":"security_exception","reason":"unauthorized"},"status":403}`, true), check: IsForbidden},
		{name: "409", handler: errorServer(409, `{"error":{"type":"version_conflict_engine_exception","reason":"conflict"},"status":409}`, true), check: IsConflict},
		{name: "not elasticsearch", handler: errorServer(200, `{"version":{"number":"9.3.2"}}`, false), check: func(err error) bool {
			return strings.Contains(err.Error(), "not Elasticsearch")
		}},
		{name: "connection refused", retryable: true},
		{name: "timeout", handler: hang, timeout: 50 * time.Millisecond, retryable: true},
		{name: "canceled", handler: hang, cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := closedURL
			if tt.handler != nil {
				srv := httptest.NewServer(tt.handler)
				defer srv.Close()
				u = srv.URL
			}
			c, err := NewClient(ClientConfig{URL: u, Username: "elastic", Password: Secret(testPassword)})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var cancel context.CancelFunc
			switch {
			case tt.timeout > 0:
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
			case tt.cancel:
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(50*time.Millisecond, cancel)
			default:
				ctx, cancel = context.WithCancel(ctx)
			}
			defer cancel()
			_, err = c.Info(ctx)
			if err == nil {
				t.Fatal("err = nil")
			}
			if got := Retryable(err); got != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.retryable)
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("check failed for %v", err)
			}
			if !strings.HasPrefix(err.Error(), "failed to get cluster info: ") {
				t.Errorf("err = %q, want the operation as context", err)
			}
		})
	}
}

func TestRetryableWrapped(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{fmt.Errorf("failed to x: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("failed to x: %w", &APIError{Status: 502}), true},
		{fmt.Errorf("failed to x: %w", &APIError{Status: 404}), false},
		{fmt.Errorf("failed to x: %w", multiError{&APIError{Type: "security_exception"}}), false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !IsForbidden(multiError{&APIError{Type: "security_exception"}}) {
		t.Error("IsForbidden(per-item security_exception) = false")
	}
}
