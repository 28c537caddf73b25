package kube

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestWaitForAPIServer: a GET to an address nothing listens on waits until a server appears
// there; a POST fails at once; a GET gives up when its context ends.
func TestWaitForAPIServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens now

	cfg := WaitForAPIServer(&rest.Config{Host: "http://" + addr}, 50*time.Millisecond, nil)
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt}

	tests := []struct {
		name    string
		method  string
		timeout time.Duration
		wantErr string
	}{
		{name: "POST fails fast", method: http.MethodPost, timeout: 5 * time.Second, wantErr: "connection refused"},
		{name: "GET gives up with its context", method: http.MethodGet, timeout: 300 * time.Millisecond, wantErr: "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, "http://"+addr+"/api", nil)
			start := time.Now()
			_, err := client.Do(req)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.method == http.MethodPost && time.Since(start) > 2*time.Second {
				t.Errorf("POST waited %s", time.Since(start))
			}
		})
	}

	t.Run("GET waits for the server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api", nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusTeapot {
					err = &net.AddrError{Err: "unexpected status " + resp.Status}
				}
			}
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("GET returned before the server existed: %v", err)
		default:
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("cannot listen on %s again: %v", addr, err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
		srv.Listener = l
		srv.Start()
		defer srv.Close()
		if err := <-done; err != nil {
			t.Fatalf("GET after the server came: %v", err)
		}
	})
}
