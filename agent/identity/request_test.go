package identity

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// gateState is what the fake gates answer.
type gateState struct {
	trusted, moved bool
}

// requestFixture is an identity whose rotation requests are driven through tick, with gates the
// test opens and closes as the trust exchange would.
type requestFixture struct {
	t     *testing.T
	ctx   context.Context
	clock *backoff.FakeClock
	id    *Identity
	gates *gateState
}

func newRequestFixture(t *testing.T) *requestFixture {
	t.Helper()
	clock := backoff.NewFakeClock(epoch)
	cfg := testConfig("east", fake.NewClientset(), clock)
	cfg.RetireGrace = time.Minute
	f := &requestFixture{t: t, ctx: context.Background(), clock: clock, id: newTestIdentity(t, cfg), gates: &gateState{}}
	f.id.SetPromoteGate(func() bool { return f.gates.trusted })
	f.id.SetRotationGates(RotationGates{
		Trusted: func() (bool, []string) {
			if f.gates.trusted {
				return true, nil
			}
			return false, []string{"west"}
		},
		Moved: func() (bool, []string) {
			if f.gates.moved {
				return true, nil
			}
			return false, []string{"west"}
		},
	})
	return f
}

// request writes a rotation request into the identity ConfigMap, as agentctl does.
func (f *requestFixture) request(id string, retireOld bool) {
	f.t.Helper()
	cms := f.id.cfg.Client.CoreV1().ConfigMaps(testNS)
	cm, err := cms.Get(f.ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[AnnotationRotateRequest] = id
	if retireOld {
		cm.Annotations[AnnotationRotateRetireOld] = "true"
	}
	if _, err := cms.Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// tick runs the identity's policy once and returns the reported status.
func (f *requestFixture) tick() RotationStatus {
	f.t.Helper()
	if _, err := f.id.tick(f.ctx, f.clock.Now()); err != nil {
		f.t.Fatal(err)
	}
	cm, err := f.id.cfg.Client.CoreV1().ConfigMaps(testNS).Get(f.ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	_, _, st := ReadRotation(cm)
	return st
}

func (f *requestFixture) expect(st RotationStatus, phase, message string, roles ...string) {
	f.t.Helper()
	if st.Phase != phase || !strings.Contains(st.Message, message) {
		f.t.Fatalf("status = %s %q, want %s with %q", st.Phase, st.Message, phase, message)
	}
	if got := rolesOf(f.id); !slices.Equal(got, roles) {
		f.t.Fatalf("roles = %v, want %v", got, roles)
	}
}

func rolesOf(id *Identity) []string { return roles(id) }

// TestRotationRequestRetireOld walks a requested rotation with retire-old through its phases;
// each waits for what the trust exchange reports.
func TestRotationRequestRetireOld(t *testing.T) {
	f := newRequestFixture(t)
	old := pemutil.Fingerprint(f.id.CACertificates()[0])
	if st := f.tick(); st.Request != "" {
		t.Fatalf("status without a request: %+v", st)
	}
	f.request("r1", true)

	st := f.tick()
	f.expect(st, RotationStaged, "waiting for peers west", "active", "next")
	if st.OldCA != old || st.NewCA != pemutil.Fingerprint(f.id.CACertificates()[1]) || !st.RetireOld || st.Request != "r1" {
		t.Fatalf("status = %+v", st)
	}

	f.gates.trusted = true // every peer acknowledged the staged bundle: promoted at once
	f.tick()
	f.gates.trusted = false // the promoted bundle is not acknowledged yet
	st = f.tick()
	f.expect(st, RotationPromoted, "waiting for peers west to acknowledge it", "active", "previous")
	if st.NewCA != pemutil.Fingerprint(f.id.CACertificates()[0]) {
		t.Fatalf("newCA = %s, want the active CA", st.NewCA)
	}

	f.gates.trusted = true
	f.expect(f.tick(), RotationPromoted, "waiting for the streams with peers west to move", "active", "previous")
	f.clock.Advance(30 * time.Second)
	f.expect(f.tick(), RotationPromoted, "waiting for the streams", "active", "previous")

	f.gates.moved = true
	f.expect(f.tick(), RotationRetiring, "waiting for every peer to drop it", "active")
	f.gates.trusted = false // the bundle without the old CA is not acknowledged yet
	f.expect(f.tick(), RotationRetiring, "waiting for peers west to drop it", "active")

	f.gates.trusted = true
	f.expect(f.tick(), RotationDone, "no peer trusts the old one", "active")
	before, err := f.id.cfg.Client.CoreV1().ConfigMaps(testNS).Get(f.ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.tick()
	after, _ := f.id.cfg.Client.CoreV1().ConfigMaps(testNS).Get(f.ctx, ConfigMapName, metav1.GetOptions{})
	if after.ResourceVersion != before.ResourceVersion {
		t.Fatal("a finished request was reported again")
	}
}

// TestRotationRequestVariants: the other outcomes of a request.
func TestRotationRequestVariants(t *testing.T) {
	tests := []struct {
		name string
		// run drives f and returns the last status.
		run         func(f *requestFixture) RotationStatus
		wantPhase   string
		wantMessage string
		wantRoles   []string
	}{
		{
			name: "without retire-old: done once promoted, the old CA kept one leaf lifetime",
			run: func(f *requestFixture) RotationStatus {
				f.request("r1", false)
				f.gates.trusted = true
				f.tick()
				return f.tick()
			},
			wantPhase: RotationDone, wantMessage: "the old one stays trusted until 2026-03-01T12:03:00Z", wantRoles: []string{"active", "previous"},
		},
		{
			name: "streams that do not move: retired after the grace period",
			run: func(f *requestFixture) RotationStatus {
				f.request("r1", true)
				f.gates.trusted = true
				f.tick()
				f.tick()
				f.clock.Advance(time.Minute)
				return f.tick()
			},
			wantPhase: RotationRetiring, wantMessage: "waiting for every peer", wantRoles: []string{"active"},
		},
		{
			name: "a CA staged on schedule is the one promoted",
			run: func(f *requestFixture) RotationStatus {
				if err := f.id.StageNextCA(f.ctx); err != nil {
					f.t.Fatal(err)
				}
				staged := pemutil.Fingerprint(f.id.CACertificates()[1])
				f.request("r1", false)
				st := f.tick()
				if st.NewCA != staged {
					f.t.Fatalf("newCA = %s, want the staged %s", st.NewCA, staged)
				}
				return st
			},
			wantPhase: RotationStaged, wantMessage: "waiting for peers west", wantRoles: []string{"active", "next"},
		},
		{
			name: "an invalid request id fails and changes nothing",
			run: func(f *requestFixture) RotationStatus {
				f.request("not valid", true)
				return f.tick()
			},
			wantPhase: RotationFailed, wantMessage: "annotation ecklink.io/rotate-request: want at most 64 printable characters without spaces", wantRoles: []string{"active"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRequestFixture(t)
			f.expect(tt.run(f), tt.wantPhase, tt.wantMessage, tt.wantRoles...)
		})
	}
}
