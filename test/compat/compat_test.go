package compat

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastRelease(t *testing.T) {
	r, err := Last()
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "0.1.0" || !strings.HasPrefix(r.Commit, "a78084a") {
		t.Errorf("last release %+v, want 0.1.0 at a78084a...", r)
	}
}

// TestReleaseChart extracts the release and reads its chart version, which must be the release
// version (the chart at the release commit is what was released).
func TestReleaseChart(t *testing.T) {
	if testing.Short() {
		t.Skip("extracts the release with git archive (skipped with -short)")
	}
	r, err := Last()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chart, err := r.Chart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version: " + r.Version, `appVersion: "` + r.Version + `"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("release chart lacks %q:\n%s", want, b)
		}
	}
}
