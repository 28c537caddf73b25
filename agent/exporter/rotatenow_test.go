package exporter

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// rotateFixture is an exporter on an esim node whose clock the test moves, and one link.
type rotateFixture struct {
	t      *testing.T
	e      *Exporter
	c      *elastic.Client
	offset time.Duration
	id     link.ID
	st     *linkState
	events *record.FakeRecorder
}

func newRotateFixture(t *testing.T) *rotateFixture {
	e, c := newKeyExporter(t)
	f := &rotateFixture{t: t, e: e, c: c, id: link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}, st: &linkState{}}
	f.events = record.NewFakeRecorder(100)
	e.cfg.Recorder = kube.NewRecorderFor(f.events)
	e.cfg.RotateNowInterval = 5 * time.Minute
	e.cfg.Now = func() time.Time { return time.Now().Add(f.offset) }
	return f
}

// ensure runs one pass with the request and the peer's status (nil: none yet).
func (f *rotateFixture) ensure(request string, invalidateOld bool, status *peerv1.LinkStatus) (chosenKey, time.Duration) {
	f.t.Helper()
	f.st.req = &peerv1.ImportRequest{KeyRotationRequest: request, KeyRotationInvalidateOld: invalidateOld}
	key, requeue, err := f.e.ensureKey(context.Background(), "east", f.id, testExport("logs-*"), elastic.Target{Namespace: "data", Name: "logs"}, status, f.st, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return key, requeue
}

// event returns the next Event recorded, "" if none.
func (f *rotateFixture) event() string {
	select {
	case ev := <-f.events.Events:
		return ev
	default:
		return ""
	}
}

// live lists the link's live key ids, oldest first.
func (f *rotateFixture) live() []string {
	f.t.Helper()
	keys, err := f.c.ListKeys(context.Background(), elastic.KeyQuery{Metadata: f.e.linkQuery("east", f.id), ActiveOnly: true})
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func using(id string, connected bool) *peerv1.LinkStatus {
	return &peerv1.LinkStatus{AppliedApiKeyId: id, WrittenApiKeyId: id, Connected: connected}
}

// TestRotateNowMakeBeforeBreak: a rotation request makes a new key at once, which records the
// request and answers it in the credentials; the old key stays until the peer is connected with
// the new one; the same request again changes nothing.
func TestRotateNowMakeBeforeBreak(t *testing.T) {
	f := newRotateFixture(t)
	first, _ := f.ensure("", false, nil)
	if first.request != "" {
		t.Fatalf("first key answers request %q, want none", first.request)
	}
	rotated, _ := f.ensure("r1", false, using(first.id, true))
	if rotated.id == first.id || rotated.request != "r1" || rotated.encoded.Value() == "" {
		t.Fatalf("after request r1: key %s answering %q (value sent: %v), want a new key answering r1", rotated.id, rotated.request, rotated.encoded.Value() != "")
	}
	if got := f.live(); len(got) != 2 {
		t.Fatalf("live keys %v: the old key must stay until the peer uses the new one", got)
	}
	again, _ := f.ensure("r1", false, using(first.id, true))
	if again.id != rotated.id {
		t.Fatalf("the same request made another key %s", again.id)
	}
	f.ensure("r1", false, using(rotated.id, true))
	if got := f.live(); len(got) != 1 || got[0] != rotated.id {
		t.Fatalf("live keys %v after the peer connected with %s, want only it", got, rotated.id)
	}
}

// TestRotateNowEmergency: with invalidate-old, the old key goes in the pass that makes the new
// key, while the peer still uses the old one.
func TestRotateNowEmergency(t *testing.T) {
	f := newRotateFixture(t)
	first, _ := f.ensure("", false, nil)
	rotated, _ := f.ensure("r1", true, using(first.id, true))
	if got := f.live(); len(got) != 1 || got[0] != rotated.id {
		t.Fatalf("live keys %v, want only the new key %s: the old one goes at once", got, rotated.id)
	}
	// The RemoteCluster keeps its annotations: the next scheduled rotation (the 24h key is due
	// 8h before it expires) is make-before-break again, and answers no new request.
	f.ensure("r1", true, using(rotated.id, true))
	f.offset = 17 * time.Hour
	scheduled, _ := f.ensure("r1", true, using(rotated.id, true))
	if scheduled.id == rotated.id {
		t.Fatal("no scheduled rotation 7h before the key expires")
	}
	if got := f.live(); len(got) != 2 {
		t.Fatalf("live keys %v after a scheduled rotation, want the old and the new: the emergency applied to the key made for it only", got)
	}
}

// TestRotateNowRateLimit: a second request within RotateNowInterval of the last key made on
// request is deferred (no key, a requeue for when the window ends) and answered once it ends;
// keys made for other reasons do not count against the window.
func TestRotateNowRateLimit(t *testing.T) {
	f := newRotateFixture(t)
	first, _ := f.ensure("", false, nil)
	// The first key was made just now, not on request: a request is answered at once.
	r1, _ := f.ensure("r1", false, using(first.id, true))
	if r1.id == first.id {
		t.Fatal("request r1 was deferred, but no key was made on request before")
	}
	if ev := f.event(); !strings.Contains(ev, "Normal "+v1alpha1.ReasonKeyRotationRequested+" environment east asked to rotate the key of link apps/ccs/west-logs now: new key "+r1.id) {
		t.Errorf("event %q, want %s naming the new key", ev, v1alpha1.ReasonKeyRotationRequested)
	}
	f.ensure("r1", false, using(r1.id, true))
	f.offset = time.Minute
	deferred, requeue := f.ensure("r2", false, using(r1.id, true))
	if deferred.id != r1.id || deferred.request != "r1" {
		t.Fatalf("request r2 one minute after r1 made key %s (answering %q): want it deferred", deferred.id, deferred.request)
	}
	if requeue <= 0 || requeue > 4*time.Minute+time.Second {
		t.Errorf("requeue %s, want the rest of the window (about 4m)", requeue)
	}
	if ev := f.event(); !strings.Contains(ev, "Warning "+v1alpha1.ReasonKeyRotationDeferred+" environment east asked to rotate the key of link apps/ccs/west-logs now") {
		t.Errorf("event %q, want %s", ev, v1alpha1.ReasonKeyRotationDeferred)
	}
	// A peer sending new ids in a loop gets nothing more.
	for i := range 20 {
		if k, _ := f.ensure("churn-"+string(rune('a'+i)), true, using(r1.id, true)); k.id != r1.id {
			t.Fatalf("request %d within the window made key %s", i, k.id)
		}
	}
	if got := f.live(); len(got) != 1 {
		t.Fatalf("live keys %v, want one: deferred requests make no key and invalidate nothing", got)
	}
	f.offset = 5*time.Minute + time.Second
	r2, _ := f.ensure("r2", false, using(r1.id, true))
	if r2.id == r1.id || r2.request != "r2" {
		t.Fatalf("request r2 after the window: key %s answering %q, want a new key", r2.id, r2.request)
	}
}

// TestRotateNowSurvivesAccessUpdate: an access change updates the live keys in place and keeps
// the request each key answers, so the request is not answered a second time.
func TestRotateNowSurvivesAccessUpdate(t *testing.T) {
	f := newRotateFixture(t)
	first, _ := f.ensure("", false, nil)
	r1, _ := f.ensure("r1", false, using(first.id, true))
	f.ensure("r1", false, using(r1.id, true))
	f.offset = 10 * time.Minute // the window does not hold the request back
	f.st.req = &peerv1.ImportRequest{KeyRotationRequest: "r1"}
	var key chosenKey
	for range 2 { // the second pass reads the metadata the update wrote
		var err error
		key, _, err = f.e.ensureKey(context.Background(), "east", f.id, testExport("audit-*"), elastic.Target{Namespace: "data", Name: "logs"}, using(r1.id, true), f.st, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if key.id != r1.id || key.request != "r1" {
		t.Fatalf("after an access change: key %s answering %q, want %s answering r1 (updated in place)", key.id, key.request, r1.id)
	}
}

// TestValidateRotationRequest: the request id a peer sends is bounded and checked on receipt;
// a bad one refuses the import request, naming the field.
func TestValidateRotationRequest(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"", true},
		{"2030-01-01T12:00:00.123456789Z", true},
		{"r1+emergency_2.x", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"new\nline", false},
		{"ünïcode", false},
		{"a/b", false},
	} {
		req := &peerv1.ImportRequest{ExportNamespace: "data", ExportName: "logs", KeyRotationRequest: tc.id}
		err := validateImport(req)
		if (err == nil) != tc.ok {
			t.Errorf("id %q: error %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "invalid import request: key_rotation_request") {
			t.Errorf("id %q: error %q does not name the field", tc.id, err)
		}
	}
}
