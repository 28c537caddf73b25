package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ecklink/ecklink/agent/config"
	"github.com/ecklink/ecklink/agent/metrics"
)

func TestHealthMux(t *testing.T) {
	tests := []struct {
		name      string
		profiling bool
		ready     bool
		want      map[string]int
	}{
		{"profiling off", false, true, map[string]int{
			"/metrics": http.StatusOK, "/healthz": http.StatusOK, "/readyz": http.StatusOK,
			"/debug/pprof/": http.StatusNotFound, "/debug/pprof/heap": http.StatusNotFound,
		}},
		{"profiling on", true, true, map[string]int{
			"/metrics": http.StatusOK, "/debug/pprof/": http.StatusOK, "/debug/pprof/heap": http.StatusOK,
			"/debug/pprof/goroutine?debug=1": http.StatusOK,
		}},
		{"not ready", false, false, map[string]int{
			"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{cfg: config.Config{Profiling: tt.profiling}, metrics: metrics.New(), ready: make(chan struct{})}
			if tt.ready {
				close(a.ready)
			}
			srv := httptest.NewServer(a.healthMux())
			defer srv.Close()
			for path, want := range tt.want {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}
