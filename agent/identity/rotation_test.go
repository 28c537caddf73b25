package identity

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
)

func roles(id *Identity) []string {
	var out []string
	for _, ca := range id.CAs() {
		out = append(out, ca.Role)
	}
	return out
}

// TestRotationPolicy drives tick, the policy core of Run, through a whole CA rotation.
func TestRotationPolicy(t *testing.T) {
	ctx := context.Background()
	id, cfg, clock := newEastAtEpoch(t)
	bundleChanged, cancel := id.Subscribe()
	defer cancel()

	step := func(name string, to time.Time) {
		t.Helper()
		clock.Advance(to.Sub(clock.Now()))
		if _, err := id.tick(ctx, clock.Now()); err != nil {
			t.Fatalf("%s: tick() error = %v", name, err)
		}
	}
	mustNotify := func(name string, want bool) {
		t.Helper()
		select {
		case <-bundleChanged:
			if !want {
				t.Fatalf("%s: unexpected bundle notification", name)
			}
		default:
			if want {
				t.Fatalf("%s: bundle subscribers not notified", name)
			}
		}
	}
	firstCA := id.CACertificates()[0]
	firstPin := id.Pin()

	t.Run("leaf renews at two thirds", func(t *testing.T) {
		serial := id.Leaf().SerialNumber
		step("before renewal", epoch.Add(119*time.Second))
		if id.Leaf().SerialNumber.Cmp(serial) != 0 {
			t.Fatal("leaf renewed too early")
		}
		step("renewal", epoch.Add(2*time.Minute))
		if id.Leaf().SerialNumber.Cmp(serial) == 0 {
			t.Fatal("leaf not renewed at 2/3 of its lifetime")
		}
		mustNotify("leaf renewal", false)
	})

	stage := stageAt(firstCA, cfg.RotateAt)
	t.Run("stage", func(t *testing.T) {
		step("stage", stage)
		if got := roles(id); !slices.Equal(got, []string{"active", "next"}) {
			t.Fatalf("roles = %v", got)
		}
		mustNotify("stage", true)
		if id.Leaf().Issuer.CommonName != firstCA.Subject.CommonName {
			t.Fatal("leaf must still be issued by the active CA while the next is only staged")
		}
		sec, err := cfg.Client.CoreV1().Secrets(testNS).Get(ctx, SecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(sec.Data[KeyNextCert]) == 0 || len(sec.Data[KeyNextKey]) == 0 || sec.Annotations[AnnotationNextStaged] == "" {
			t.Fatal("next CA not persisted")
		}
		certs, err := pemutil.ValidateCABundle(sec.Data[KeyBundle], clock.Now(), pemutil.Limits{})
		if err != nil || len(certs) != 2 {
			t.Fatalf("bundle.crt = %d certs, %v", len(certs), err)
		}
	})

	t.Run("restart keeps the staged CA", func(t *testing.T) {
		again := newTestIdentity(t, cfg)
		if got := roles(again); !slices.Equal(got, []string{"active", "next"}) {
			t.Fatalf("roles after restart = %v", got)
		}
		if again.CAs()[1].Fingerprint != id.CAs()[1].Fingerprint {
			t.Fatal("restart lost the staged CA")
		}
	})

	t.Run("promote after overlap", func(t *testing.T) {
		next := id.CACertificates()[1]
		step("before overlap", stage.Add(cfg.Overlap-time.Second))
		if got := roles(id); !slices.Equal(got, []string{"active", "next"}) {
			t.Fatalf("promoted early: %v", got)
		}
		step("overlap", stage.Add(cfg.Overlap))
		if got := roles(id); !slices.Equal(got, []string{"active", "previous"}) {
			t.Fatalf("roles = %v", got)
		}
		if !id.CACertificates()[0].Equal(next) || id.Leaf().Issuer.CommonName != next.Subject.CommonName {
			t.Fatal("leaf not re-issued by the promoted CA")
		}
		if id.Pin() == firstPin {
			t.Fatal("pin did not change")
		}
		cm, err := cfg.Client.CoreV1().ConfigMaps(testNS).Get(ctx, ConfigMapName, metav1.GetOptions{})
		if err != nil || cm.Data[KeyPin] != id.Pin() {
			t.Fatalf("configmap pin not updated: %v", err)
		}
		mustNotify("promote", true)
	})

	t.Run("retire previous before it expires", func(t *testing.T) {
		step("retire", retireAt(firstCA))
		if got := roles(id); !slices.Equal(got, []string{"active"}) {
			t.Fatalf("roles = %v", got)
		}
		if !clock.Now().Before(firstCA.NotAfter) {
			t.Fatal("retired too late")
		}
		mustNotify("retire", true)
	})
}

func TestPromoteGate(t *testing.T) {
	ctx := context.Background()
	clock := backoff.NewFakeClock(epoch)
	id := newEnvIdentity(t, "east", clock)
	if err := id.PromoteNextCA(ctx); err == nil {
		t.Fatal("PromoteNextCA() without a staged CA succeeded")
	}
	if err := id.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	acked := false
	id.SetPromoteGate(func() bool { return acked })
	next, err := id.tick(ctx, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := roles(id); !slices.Equal(got, []string{"active", "next"}) {
		t.Fatalf("gate closed but roles = %v", got)
	}
	if want := clock.Now().Add(time.Minute); !next.Equal(want) {
		t.Fatalf("next wake = %v, want gate poll at %v", next, want)
	}
	acked = true
	if _, err := id.tick(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := roles(id); !slices.Equal(got, []string{"active", "previous"}) {
		t.Fatalf("gate open but roles = %v", got)
	}
	if err := id.RetirePrevious(ctx); err != nil {
		t.Fatal(err)
	}
	if got := roles(id); !slices.Equal(got, []string{"active"}) {
		t.Fatalf("roles = %v", got)
	}
}

func TestRunRenewsLeaf(t *testing.T) {
	clock := backoff.NewFakeClock(epoch)
	id, err := New(testConfig("east", fake.NewClientset(), clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- id.Run(ctx) }()
	if !clock.WaitForWaiters(1, 5*time.Second) {
		t.Fatal("Run did not wait")
	}
	serial := id.Leaf().SerialNumber
	clock.Advance(2 * time.Minute)
	testenv.Eventually(t, 5*time.Second, "Run to renew the leaf", func() bool { return id.Leaf().SerialNumber.Cmp(serial) != 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
}

func TestInitExpiredCA(t *testing.T) {
	id, cfg, clock := newEastAtEpoch(t)
	clock.Advance(30 * time.Minute)
	if err := id.StageNextCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := id.CACertificates()[0]
	clock.Advance(first.NotAfter.Sub(clock.Now()) + time.Second)
	again := newTestIdentity(t, cfg)
	if got := roles(again); !slices.Equal(got, []string{"active"}) || again.CACertificates()[0].Equal(first) {
		t.Fatalf("expired active CA not replaced by the staged one: %v", got)
	}
	clock.Advance(2 * cfg.CAValidity)
	stale, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Init(context.Background()); err == nil {
		t.Fatal("Init() with only expired CAs succeeded")
	}
}
