package identity

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/internal/backoff"
)

// TestStreamCheckerRenewAt: when a dialed stream is replaced, for each reason.
func TestStreamCheckerRenewAt(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup changes the identities after the stream "opened" with local and chain.
		setup      func(t *testing.T, east, west *Identity, trust *identitytest.Trust)
		served     bool // the stream was dialed by the peer: no local leaf
		wantNow    bool
		wantReason string
	}{
		{name: "fresh leaves: at 4/5 of the life of the first leaf to reach it", wantReason: "nears its expiry"},
		{name: "a stream the peer dialed: at 4/5 of the peer's leaf", served: true, wantReason: "the peer's leaf certificate nears its expiry"},
		{
			name: "this agent promoted a CA: now",
			setup: func(t *testing.T, east, _ *Identity, _ *identitytest.Trust) {
				mustDo(t, east.StageNextCA(ctx), east.PromoteNextCA(ctx))
			},
			wantNow: true, wantReason: "this agent signs with a new CA",
		},
		{
			name: "the peer promoted a CA (its new CA comes first in trust): now",
			setup: func(t *testing.T, _, west *Identity, trust *identitytest.Trust) {
				mustDo(t, west.StageNextCA(ctx), west.PromoteNextCA(ctx))
				trust.Set("west", west.CACertificates())
			},
			wantNow: true, wantReason: "the peer signs with a new CA",
		},
		{
			name: "the peer staged a CA (announced, not used): unchanged",
			setup: func(t *testing.T, _, west *Identity, trust *identitytest.Trust) {
				mustDo(t, west.StageNextCA(ctx))
				trust.Set("west", west.CACertificates())
			},
			wantReason: "nears its expiry",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := backoff.NewFakeClock(epoch)
			east := newEnvIdentity(t, "east", clock)
			west := newEnvIdentity(t, "west", clock)
			clock.Advance(time.Minute)
			// West's leaf is younger: it expires last.
			mustDo(t, west.renewLeaf(clock.Now()))
			trust := &identitytest.Trust{}
			trust.Set("west", west.CACertificates())
			local, chain := east.Leaf(), []*x509.Certificate{west.Leaf(), west.CACertificates()[0]}
			if tt.served {
				local = nil
			}
			if tt.setup != nil {
				tt.setup(t, east, west, trust)
			}
			at, reason := east.StreamChecker(trust).RenewAt("west", local, chain)
			var want time.Time
			if tt.served {
				want = renewPoint(chain[0])
			} else {
				want = renewPoint(local)
			}
			if tt.wantNow {
				want = clock.Now()
			}
			if !at.Equal(want) || !strings.Contains(reason, tt.wantReason) {
				t.Fatalf("RenewAt() = %v %q, want %v %q", at, reason, want, tt.wantReason)
			}
			if !tt.wantNow && !tt.served {
				// 4/5 of the life is after the renewal at 2/3 and before the expiry.
				renew := local.NotAfter.Add(-time.Minute) // issued at -3m, renewed at 2m of 3m
				if !at.After(renew) || !at.Before(local.NotAfter) {
					t.Fatalf("RenewAt() = %v, want between the renewal %v and the expiry %v", at, renew, local.NotAfter)
				}
			}
		})
	}
}

func mustDo(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamCheckerVerifyPeer: a live stream's chain verified again against the trust and clock
// of now.
func TestStreamCheckerVerifyPeer(t *testing.T) {
	tests := []struct {
		name    string
		change  func(clock *backoff.FakeClock, trust *identitytest.Trust, other *Identity)
		wantErr string
	}{
		{name: "unchanged", change: func(*backoff.FakeClock, *identitytest.Trust, *Identity) {}},
		{name: "CA dropped from trust", change: func(_ *backoff.FakeClock, tr *identitytest.Trust, other *Identity) {
			tr.Set("west", other.CACertificates())
		}, wantErr: "certificate signed by unknown authority"},
		{name: "peer unpaired", change: func(_ *backoff.FakeClock, tr *identitytest.Trust, _ *Identity) { tr.Set("west", nil) },
			wantErr: `environment "west" is not a paired peer`},
		{name: "leaf expired", change: func(c *backoff.FakeClock, _ *identitytest.Trust, _ *Identity) { c.Advance(3*time.Minute + time.Second) },
			wantErr: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := backoff.NewFakeClock(epoch)
			east := newEnvIdentity(t, "east", clock)
			west := newEnvIdentity(t, "west", clock)
			other := newEnvIdentity(t, "west", clock)
			trust := &identitytest.Trust{}
			trust.Set("west", west.CACertificates())
			chain := []*x509.Certificate{west.Leaf(), west.CACertificates()[0]}
			tt.change(clock, trust, other)
			err := east.StreamChecker(trust).VerifyPeer("west", chain, x509.ExtKeyUsageClientAuth)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyPeer() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "failed to verify the certificate of west again") {
				t.Fatalf("VerifyPeer() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestPreviousCARetirement: a rotated-out CA stays in the bundle one leaf lifetime after the
// promotion (no leaf it issued can be valid later), across restarts; without a known promotion
// time (a Secret of an older agent) until just before it expires.
func TestPreviousCARetirement(t *testing.T) {
	ctx := context.Background()
	id, cfg, clock := newEastAtEpoch(t)
	mustDo(t, id.StageNextCA(ctx))
	clock.Advance(time.Minute)
	mustDo(t, id.PromoteNextCA(ctx))
	promoted := clock.Now()
	if !id.PromotedAt().Equal(promoted) {
		t.Fatalf("PromotedAt() = %v, want %v", id.PromotedAt(), promoted)
	}
	if !id.IssuedByActiveCA(id.Leaf()) || id.IssuedByActiveCA(nil) {
		t.Fatal("the leaf is not issued by the promoted CA")
	}
	if next, err := id.tick(ctx, clock.Now()); err != nil || next.After(promoted.Add(cfg.LeafValidity)) {
		t.Fatalf("tick() = %v, %v; want a wake-up by the retirement at %v", next, err, promoted.Add(cfg.LeafValidity))
	}
	clock.Advance(cfg.LeafValidity - time.Second)
	restarted := newTestIdentity(t, cfg)
	if got := roles(restarted); !slices.Equal(got, []string{"active", "previous"}) {
		t.Fatalf("roles after a restart before the retirement = %v", got)
	}
	clock.Advance(time.Second)
	if _, err := restarted.tick(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := roles(restarted); !slices.Equal(got, []string{"active"}) {
		t.Fatalf("roles one leaf lifetime after the promotion = %v", got)
	}

	// A Secret without the promotion time keeps the previous CA until just before it expires.
	id2 := newEnvIdentity(t, "west", clock)
	mustDo(t, id2.StageNextCA(ctx), id2.PromoteNextCA(ctx))
	sec, err := id2.cfg.Client.CoreV1().Secrets(testNS).Get(ctx, SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(sec.Annotations, AnnotationPromoted)
	if _, err := id2.cfg.Client.CoreV1().Secrets(testNS).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	again := newTestIdentity(t, id2.cfg)
	prev := again.CACertificates()[1]
	clock.Advance(time.Hour)
	if _, err := again.tick(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := roles(again); !slices.Contains(got, "previous") {
		t.Fatalf("roles with an unknown promotion time = %v, want the previous kept until %v", got, retireAt(prev))
	}
}
