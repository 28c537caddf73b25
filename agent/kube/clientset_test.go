package kube

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// TestClientsetServesItsGroups: the agent's Clientset reaches the API server for core/v1 and
// coordination.k8s.io/v1 at their paths, with the config's user agent, and refuses a rate limit
// without a burst.
func TestClientsetServesItsGroups(t *testing.T) {
	var mu sync.Mutex
	var paths, agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths, agents = append(paths, r.URL.Path), append(agents, r.UserAgent())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
	}))
	t.Cleanup(srv.Close)
	cs, err := NewClientset(&rest.Config{Host: srv.URL, QPS: 50, Burst: 100, UserAgent: "ecklink-agent/test"})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = cs.CoreV1().Secrets("ecklink").Get(t.Context(), "s", metav1.GetOptions{})
	_, _ = cs.CoordinationV1().Leases("ecklink").Get(t.Context(), "l", metav1.GetOptions{})
	want := []string{"/api/v1/namespaces/ecklink/secrets/s", "/apis/coordination.k8s.io/v1/namespaces/ecklink/leases/l"}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != len(want) || paths[0] != want[0] || paths[1] != want[1] {
		t.Errorf("requests %v, want %v", paths, want)
	}
	for _, a := range agents {
		if a != "ecklink-agent/test" {
			t.Errorf("user agent %q, want ecklink-agent/test", a)
		}
	}
	if _, err := NewClientset(&rest.Config{Host: srv.URL, QPS: 50}); err == nil {
		t.Error("a rate limit without a burst was accepted")
	}
}
