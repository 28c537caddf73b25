package peering

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/backoff"
)

// fakeCredentials answers VerifyPeer with err (settable) and RenewAt with at.
type fakeCredentials struct {
	mu       sync.Mutex
	err      error
	at       time.Time
	verified int
}

func (f *fakeCredentials) VerifyPeer(string, []*x509.Certificate, x509.ExtKeyUsage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified++
	return f.err
}

func (f *fakeCredentials) RenewAt(string, *x509.Certificate, []*x509.Certificate) (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, "test renewal"
}

func (f *fakeCredentials) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeCredentials) verifications() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verified
}

// TestSessionCredentialChecks drives one session's re-verification of its peer certificate
// with a fake clock: expiry, trust changes (with and without Recheck), and renewal requests.
func TestSessionCredentialChecks(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(10 * time.Minute)}
	ca := &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	untrusted := errors.New("certificate signed by unknown authority")
	type step struct {
		advance time.Duration // fake time to advance first
		untrust bool          // make VerifyPeer fail
		recheck bool          // call Manager.Recheck
		// want: "" the session keeps running; else a substring of the error it ends with.
		want string
		// renew: a renewal request is expected (true) or not (false) after this step.
		renew bool
	}
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		dialed  bool
		noCreds bool
		renewAt time.Duration // RenewAt answers t0+renewAt (0: never)
		steps   []step
	}{
		{
			name:  "expires at the leaf's NotAfter, not before",
			chain: []*x509.Certificate{leaf, ca},
			steps: []step{{advance: 10 * time.Minute}, {advance: time.Millisecond, want: "expired at 2030-01-01T00:10:00Z"}},
		},
		{
			name:    "expiry holds without Credentials too",
			chain:   []*x509.Certificate{leaf, ca},
			noCreds: true,
			steps:   []step{{advance: 9 * time.Minute}, {advance: time.Minute + time.Millisecond, want: "expired"}},
		},
		{
			name:  "a CA that expires before the leaf ends it first",
			chain: []*x509.Certificate{leaf, {NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(5 * time.Minute)}},
			steps: []step{{advance: 5*time.Minute + time.Millisecond, want: "expired at 2030-01-01T00:05:00Z"}},
		},
		{
			name:  "a trust change ends it at once on Recheck",
			chain: []*x509.Certificate{leaf, ca},
			steps: []step{{recheck: true}, {untrust: true, recheck: true, want: "unknown authority"}},
		},
		{
			name:  "without Recheck, the periodic check ends it",
			chain: []*x509.Certificate{leaf, ca},
			steps: []step{{untrust: true}, {advance: 59 * time.Second}, {advance: time.Second, want: "unknown authority"}},
		},
		{
			name:    "without a chain nothing is checked",
			noCreds: false,
			steps:   []step{{untrust: true, recheck: true}, {advance: time.Hour}},
		},
		{
			name:    "a dialed stream asks for its replacement once, at RenewAt",
			chain:   []*x509.Certificate{leaf, ca},
			dialed:  true,
			renewAt: 7 * time.Minute,
			steps:   []step{{advance: 6 * time.Minute}, {advance: time.Minute, renew: true}, {advance: time.Minute, recheck: true}},
		},
		{
			name:    "renewal due at the start is asked at once",
			chain:   []*x509.Certificate{leaf, ca},
			dialed:  true,
			renewAt: -time.Second,
			steps:   []step{{renew: true}},
		},
		{
			name:    "a stream the peer dialed never asks",
			chain:   []*x509.Certificate{leaf, ca},
			renewAt: time.Minute,
			steps:   []step{{advance: 2 * time.Minute}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := backoff.NewFakeClock(t0)
			creds := &fakeCredentials{}
			if tt.renewAt != 0 {
				creds.at = t0.Add(tt.renewAt)
			}
			hs := newHarness(t, func(c *Config) {
				c.Clock = clock
				if !tt.noCreds {
					c.Credentials = creds
				}
			})
			var ctl *dialControl
			if tt.dialed {
				ctl = newDialControl()
			}
			hs.startWith(sessionOptions{dialed: tt.dialed, chain: tt.chain, ctl: ctl})
			hs.open("west", nil)
			waitFor(t, "connected", wait, func() bool { return hs.h.get(func(h *fakeHandler) bool { return h.connected == 1 }) })
			renewals := 0
			for i, st := range tt.steps {
				if st.untrust {
					creds.set(untrusted)
				}
				before := creds.verifications()
				if st.recheck {
					hs.m.Recheck("west")
					if !tt.noCreds && len(tt.chain) > 0 && st.want == "" {
						waitFor(t, "the recheck", wait, func() bool { return creds.verifications() > before })
					}
				}
				if st.advance > 0 {
					if len(tt.chain) > 0 && !clock.WaitForWaiters(1, wait) {
						t.Fatalf("step %d: the session armed no timer", i)
					}
					clock.Advance(st.advance)
				}
				if st.want != "" {
					err := hs.wait()
					if !errors.Is(err, ErrPeerCredentials) || !strings.Contains(err.Error(), st.want) {
						t.Fatalf("step %d: session ended with %v, want ErrPeerCredentials with %q", i, err, st.want)
					}
					return
				}
				if st.renew {
					select {
					case <-ctl.renew:
						renewals++
					case <-time.After(wait):
						t.Fatalf("step %d: no renewal requested", i)
					}
				}
				// The session still answers: it is alive.
				hs.send(trustUpdate("trust", uint64(i+1), fmt.Sprintf("n%d", i), "A"))
				hs.nextAck()
			}
			if ctl != nil {
				select {
				case <-ctl.renew:
					t.Fatal("a second renewal was requested")
				default:
				}
			}
			if tt.renewAt != 0 && tt.dialed && renewals != 1 {
				t.Fatalf("%d renewals requested, want 1", renewals)
			}
		})
	}
}

// nextAck skips the session's own updates (its inventory) up to its next Ack.
func (hs *harness) nextAck() {
	hs.t.Helper()
	for {
		m := hs.next()
		if m.GetAck() != nil {
			return
		}
		if m.GetUpdate() == nil {
			hs.t.Fatalf("got %v, want an Ack", m)
		}
	}
}

// TestTakeOverWaitsForOpen: a session replacing the current one becomes current only once the
// peer answered its Open; until then the current one serves, and a replacement whose peer never
// answers leaves it in place.
func TestTakeOverWaitsForOpen(t *testing.T) {
	hs := newHarness(t, nil)
	ctl := newDialControl()
	hs.startWith(sessionOptions{dialed: true, ctl: ctl})
	hs.open("west", nil)
	first := hs.pipe
	waitFor(t, "connected", wait, func() bool { return hs.h.get(func(h *fakeHandler) bool { return h.connected == 1 }) })

	run := func(h *handover) (*pipeStream, chan error) {
		p, done := newPipe(), make(chan error, 1)
		ctl.successor.Store(h)
		go func() {
			_, err := hs.m.serveWith(context.Background(), "west", p, sessionOptions{dialed: true, ctl: newDialControl(), takeOver: h})
			p.close()
			done <- err
		}()
		t.Cleanup(p.close)
		return p, done
	}

	// A replacement that fails before the peer's Open leaves the current session serving.
	failed := newHandover()
	p, done := run(failed)
	if o := (&harness{t: t, pipe: p}).next().GetOpen(); o == nil {
		t.Fatal("the replacement did not send Open")
	}
	p.close()
	if err := <-done; err == nil {
		t.Fatal("the failed replacement returned no error")
	}
	if failed.attached.Load() {
		t.Fatal("a replacement without the peer's Open took over")
	}
	first.in <- trustUpdate("trust", 1, "n1", "A")
	(&harness{t: t, pipe: first}).nextAck()

	// A replacement the peer answers takes over; the current session ends replaced, even when
	// its stream ended first (the peer closes it as soon as it accepted the new one).
	good := newHandover()
	p, done = run(good)
	ph := &harness{t: t, pipe: p}
	if ph.next().GetOpen() == nil {
		t.Fatal("the replacement did not send Open")
	}
	first.close()
	time.Sleep(50 * time.Millisecond) // the current session's stream is gone, its successor not yet there
	if s := hs.m.Sessions(); !s[0].Connected {
		t.Fatal("the peer showed disconnected while its stream was being replaced")
	}
	p.in <- openMsg("west", 1, map[string]uint64{"trust": 1})
	if err := hs.wait(); !errors.Is(err, ErrReplaced) {
		t.Fatalf("the current session ended with %v, want ErrReplaced", err)
	}
	<-good.done
	if !good.attached.Load() {
		t.Fatal("the answered replacement did not take over")
	}
	p.in <- trustUpdate("trust", 2, "n2", "B")
	ph.nextAck()
	if n := hs.h.get(func(h *fakeHandler) bool { return h.disconnected == 0 }); !n {
		t.Fatal("a replacement was reported as a disconnection")
	}
	p.close()
	<-done
}

// nowCredentials answers RenewAt with its own reading of the wall clock, as identity does for a
// renewal due now: slightly after the session's.
type nowCredentials struct{ fakeCredentials }

func (n *nowCredentials) RenewAt(string, *x509.Certificate, []*x509.Certificate) (time.Time, string) {
	n.mu.Lock()
	n.verified++
	n.mu.Unlock()
	return time.Now(), "due now"
}

// TestRenewalDueNowOnTheWallClock: a renewal due "now" is asked for at once, not scheduled a
// few microseconds later again and again.
func TestRenewalDueNowOnTheWallClock(t *testing.T) {
	creds := &nowCredentials{}
	hs := newHarness(t, func(c *Config) { c.Credentials = creds })
	ctl := newDialControl()
	leaf := &x509.Certificate{NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	hs.startWith(sessionOptions{dialed: true, chain: []*x509.Certificate{leaf}, ctl: ctl})
	select {
	case <-ctl.renew:
	case <-time.After(wait):
		t.Fatal("no renewal requested")
	}
	time.Sleep(100 * time.Millisecond)
	if n := creds.verifications(); n > 3 {
		t.Fatalf("RenewAt called %d times: the session spins", n)
	}
}
