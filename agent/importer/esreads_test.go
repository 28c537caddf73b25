package importer

import (
	"testing"

	"github.com/ecklink/ecklink/agent/elastic"
)

// TestESReadsKeepUntilASettingsWrite: a pass's reads of the settings and of _remote/info are
// served again from what was read until a settings write goes through the client.
func TestESReadsKeepUntilASettingsWrite(t *testing.T) {
	f := newFixture(t)
	st := &state{}
	steps := []struct {
		name      string
		do        func() error
		wantReads int // GET /_remote/info + GET /_cluster/settings
	}{
		{"first reads", func() error { return readBoth(t, f, st) }, 2},
		{"again, nothing written", func() error { return readBoth(t, f, st) }, 0},
		{"a settings write", func() error {
			_, err := f.es.PutRemotesOver(t.Context(), map[string]elastic.RemoteSettings{"logs": {Mode: "proxy", ProxyAddress: testProxy}}, nil)
			return err
		}, 0},
		{"after the write", func() error { return readBoth(t, f, st) }, 2},
		{"again", func() error { return readBoth(t, f, st) }, 0},
	}
	for _, s := range steps {
		f.requests.Take()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := f.requests.Take()
		if n := got["GET /_remote/info"] + got["GET /_cluster/settings"]; n != s.wantReads {
			t.Errorf("%s: %d reads (%v), want %d", s.name, n, got, s.wantReads)
		}
	}
	if s, _ := st.remoteSettings(t.Context(), f.es); s["logs"].ProxyAddress != testProxy {
		t.Errorf("settings after the write %+v, want logs to %s", s["logs"], testProxy)
	}
}

func readBoth(t *testing.T, f *fixture, st *state) error {
	t.Helper()
	if _, err := st.remoteInfo(t.Context(), f.es); err != nil {
		return err
	}
	_, err := st.remoteSettings(t.Context(), f.es)
	return err
}
