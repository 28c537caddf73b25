package signing

import (
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
)

// TestRotateNow: a rotation on request stages a CA at once, promotes it as soon as the remotes
// trust it even while a previous CA is held (a scheduled rotation would wait for that CA to
// expire), survives a restart (Data/Load) at each step, and is answered once: the same request
// again changes nothing.
func TestRotateNow(t *testing.T) {
	a := mustNew(t, "east")
	now := t0.Add(time.Hour)
	reload := func() {
		t.Helper()
		data, err := a.Data()
		if err != nil {
			t.Fatal(err)
		}
		if a, err = Load(Config{Environment: "east"}, data); err != nil {
			t.Fatal(err)
		}
	}
	trusted := false
	tick := func() bool {
		t.Helper()
		changed, err := a.Tick(now, func() bool { return trusted })
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	rotate := func(id string) (old string) {
		t.Helper()
		old = pemutil.Fingerprint(a.ActiveCA())
		if changed, err := a.RotateNow(id, now); err != nil || !changed {
			t.Fatalf("RotateNow(%s): changed %v, %v; want a staged CA", id, changed, err)
		}
		reload()
		if a.StagedCA() == nil || a.Request() != id {
			t.Fatalf("after RotateNow(%s) and a restart: staged %v, request %q", id, a.StagedCA() != nil, a.Request())
		}
		trusted = false
		if tick() {
			t.Fatal("promoted before the remotes trust the staged CA")
		}
		trusted = true
		if !tick() {
			t.Fatal("not promoted once the remotes trust the staged CA")
		}
		reload()
		if pemutil.Fingerprint(a.ActiveCA()) == old || a.Done() != id || a.Request() != "" || a.StagedCA() != nil {
			t.Fatalf("after promotion: active changed %v, done %q, request %q", pemutil.Fingerprint(a.ActiveCA()) != old, a.Done(), a.Request())
		}
		return old
	}
	first := rotate("r1")
	// A previous CA is held now (the one r1 replaced); a second request does not wait for it.
	second := rotate("r2")
	bundle, err := pemutil.ParseCertificates(a.TrustBundle(now), pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for _, c := range bundle {
		fps = append(fps, pemutil.Fingerprint(c))
	}
	if len(fps) != 2 || fps[1] != second || fps[0] == first || fps[1] == first {
		t.Errorf("trust bundle %v: want the active CA and the one r2 replaced (%s), not the one r1 replaced (%s)", fps, second, first)
	}
	if changed, err := a.RotateNow("r2", now); err != nil || changed {
		t.Errorf("RotateNow(r2) again: changed %v, %v; want nothing (answered)", changed, err)
	}
	if _, err := a.RotateNow("", now); err == nil {
		t.Error("RotateNow with an empty id: want an error")
	}
}
