package elastic

import (
	"context"
	"testing"

	"github.com/ecklink/ecklink/test/esim"
)

// TestFileSettings: the applied version of the file-based settings and a refused version, as
// GET /_cluster/state reports them; none before any was applied.
func TestFileSettings(t *testing.T) {
	e := newEnv(t, "9.5.0")
	ctx := context.Background()
	got, err := e.c.FileSettings(ctx)
	if err != nil || got.Applied {
		t.Fatalf("FileSettings = %+v, %v; want not applied", got, err)
	}
	e.node.SetFileSettings(&esim.FileSettingsState{Version: 1764669000123456789, Handlers: []string{"cluster_secrets"}})
	if got, err = e.c.FileSettings(ctx); err != nil || !got.Applied || got.Version != 1764669000123456789 || got.Errors != nil {
		t.Fatalf("FileSettings = %+v, %v; want version 1764669000123456789", got, err)
	}
	e.node.SetFileSettings(&esim.FileSettingsState{Version: 7, Errors: &esim.FileSettingsErrors{Version: 8, ErrorKind: "parsing", Errors: []string{"bad json"}}})
	if got, err = e.c.FileSettings(ctx); err != nil || got.Version != 7 || got.ErrorVersion != 8 || got.ErrorKind != "parsing" || len(got.Errors) != 1 {
		t.Fatalf("FileSettings = %+v, %v; want version 7 and the error of 8", got, err)
	}
}
