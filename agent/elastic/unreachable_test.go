package elastic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestUnavailable(t *testing.T) {
	// A port nobody listens on: the request gets no answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient(ClientConfig{URL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, refused := c.GetRemoteSettings(context.Background())
	var ue *UnreachableError
	if !errors.As(refused, &ue) {
		t.Fatalf("connection refused: got %T %v, want an UnreachableError", refused, refused)
	}
	canceledCtx, cancel := context.WithCancel(context.Background())
	cancel()
	_, canceled := c.GetRemoteSettings(canceledCtx)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", refused, true},
		{"refused, wrapped", fmt.Errorf("failed to read remote cluster settings: %w", refused), true},
		{"canceled", canceled, false},
		{"429", &APIError{Status: 429, Type: "es_rejected_execution_exception"}, true},
		{"500", fmt.Errorf("x: %w", &APIError{Status: 500}), true},
		{"503", &APIError{Status: 503}, true},
		{"403", &APIError{Status: 403, Type: "security_exception"}, false},
		{"400", &APIError{Status: 400}, false},
		{"not elasticsearch", &net.OpError{Op: "dial", Err: errors.New("refused")}, false},
		{"nil", nil, false},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
