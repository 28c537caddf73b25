package elastic

import (
	"context"
	"net/http"
	"testing"

	"github.com/ecklink/ecklink/test/esim"
)

func TestLicense(t *testing.T) {
	e := newEnv(t, "9.1.0")
	ctx := context.Background()
	got, err := e.c.License(ctx)
	if err != nil || *got != (License{Type: "enterprise", Status: "active"}) {
		t.Fatalf("License = %+v, %v", got, err)
	}
	if err := e.node.SetLicense(esim.LicenseBasic, esim.LicenseExpired); err != nil {
		t.Fatal(err)
	}
	if got, err = e.c.License(ctx); err != nil || *got != (License{Type: "basic", Status: "expired"}) {
		t.Fatalf("License = %+v, %v", got, err)
	}
}

// TestLicenseMissing: a cluster without a license answers {} (operation mode MISSING).
func TestLicenseMissing(t *testing.T) {
	e := newEnv(t, "9.1.0", func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/_license" {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Elastic-Product", "Elasticsearch")
				_, _ = w.Write([]byte(`{}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	if got, err := e.c.License(context.Background()); err == nil {
		t.Fatalf("License = %+v, want an error", got)
	}
}
