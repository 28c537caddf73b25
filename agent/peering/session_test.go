package peering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// reply describes the answer expected for one message sent by the peer.
type reply struct {
	ack    bool
	reason string // Nack reason
	text   string // substring of the Nack message
}

func TestReceive(t *testing.T) {
	big := strings.Repeat("x", 3000)
	tests := []struct {
		name        string
		mutate      func(*Config)
		refuse      func(string, *peerv1.Update) error
		applied     map[string]uint64 // what the application persisted before the session
		msgs        []*peerv1.Message
		want        []reply
		wantApplied int // HandleUpdate calls that succeeded
	}{
		{
			name: "apply, duplicate, rollback",
			msgs: []*peerv1.Message{
				trustUpdate("trust", 5, "n1", "A"),
				trustUpdate("trust", 5, "n2", "A"),
				trustUpdate("trust", 3, "n3", "B"),
				trustUpdate("trust", 5, "n4", "B"),
				trustUpdate("trust", 6, "n5", "B"),
			},
			want: []reply{
				{ack: true}, {ack: true},
				{reason: ReasonSequenceRollback, text: "sequence 3 is below 5"},
				{reason: ReasonSequenceRollback, text: "already applied with different content"},
				{ack: true},
			},
			wantApplied: 2,
		},
		{
			name:    "seeded from the application: same sequence re-applied, lower refused",
			applied: map[string]uint64{"trust": 4},
			msgs:    []*peerv1.Message{trustUpdate("trust", 3, "n1", "A"), trustUpdate("trust", 4, "n2", "A"), trustUpdate("trust", 4, "n3", "A")},
			want:    []reply{{reason: ReasonSequenceRollback}, {ack: true}, {ack: true}},
			// Sequence 4 with an unknown hash is applied once (idempotently), then known.
			wantApplied: 1,
		},
		{
			name: "unknown and malformed messages",
			msgs: []*peerv1.Message{
				{},
				{Kind: &peerv1.Message_Update{Update: &peerv1.Update{Resource: "trust", Sequence: 1, Nonce: "n"}}},
				trustUpdate("", 1, "n", "A"),
				trustUpdate("has space", 1, "n", "A"),
				trustUpdate("trust", 0, "n", "A"),
				trustUpdate(ResourceInventory, 1, "n", "A"),
				{Kind: &peerv1.Message_Update{Update: &peerv1.Update{Resource: "x", Nonce: "n", Payload: &peerv1.Update_Inventory{Inventory: &peerv1.Inventory{}}}}},
				trustUpdate("trust", 1, strings.Repeat("n", 200), "A"),
			},
			want: []reply{
				{reason: ReasonUnknownMessage, text: "unknown message kind"},
				{reason: ReasonUnknownMessage, text: "no payload"},
				{reason: ReasonInvalidResource, text: "empty"},
				{reason: ReasonInvalidResource, text: "space"},
				{reason: ReasonInvalidSequence},
				{reason: ReasonInvalidResource, text: "reserved"},
				{reason: ReasonInvalidResource, text: "inventory must use"},
				{reason: ReasonUnknownMessage, text: "nonce is 200 bytes"},
			},
		},
		{
			name: "handler refusals",
			refuse: func(_ string, u *peerv1.Update) error {
				switch string(u.GetTrust().GetCaBundle()) {
				case "refuse":
					return Refuse("InvalidCA", "certificate %d (CN=%s): not a CA (basicConstraints CA=false)", 2, "x")
				case "fail":
					return fmt.Errorf("failed to write secret with key c2VjcmV0LWtleQ==")
				}
				return nil
			},
			msgs: []*peerv1.Message{trustUpdate("trust", 1, "n1", "refuse"), trustUpdate("trust", 2, "n2", "fail"), trustUpdate("trust", 3, "n3", "ok")},
			want: []reply{
				{reason: "InvalidCA", text: "certificate 2 (CN=x): not a CA"},
				{reason: ReasonInternal, text: "failed to apply"},
				{ack: true},
			},
			wantApplied: 1,
		},
		{
			name:   "oversized update names its size",
			mutate: func(c *Config) { c.MaxUpdateBytes = 1000 },
			msgs:   []*peerv1.Message{trustUpdate("trust", 1, "n1", big)},
			want:   []reply{{reason: ReasonTooLarge, text: "at most 1000 allowed"}},
		},
		{
			name:   "rate limited",
			mutate: func(c *Config) { c.UpdateRate = 0.001; c.UpdateBurst = 2; c.ResyncAllowance = -1 },
			msgs:   []*peerv1.Message{trustUpdate("a", 1, "n1", "A"), trustUpdate("b", 1, "n2", "A"), trustUpdate("c", 1, "n3", "A")},
			want:   []reply{{ack: true}, {ack: true}, {reason: ReasonRateLimited, text: "resend later"}},
			// The limited update is not processed.
			wantApplied: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, tt.mutate)
			hs.h.refuse = tt.refuse
			if tt.applied != nil {
				hs.h.applied["west"] = tt.applied
			}
			hs.start()
			o := hs.open("west", nil)
			// Sequences known only from the application's persisted state are announced one
			// lower, so the peer resends the content this process never saw.
			for r, seq := range tt.applied {
				if o.Applied[r] != seq-1 {
					t.Fatalf("Open.applied[%s] = %d, want %d", r, o.Applied[r], seq-1)
				}
			}
			if inv := hs.nextUpdate(); inv.GetInventory() == nil {
				t.Fatalf("want the (empty) inventory first, got %v", inv)
			}
			for i, msg := range tt.msgs {
				hs.send(msg)
				got := hs.next()
				w := tt.want[i]
				if w.ack {
					if got.GetAck() == nil {
						t.Fatalf("message %d: got %v, want Ack", i, got)
					}
					continue
				}
				n := got.GetNack()
				if n == nil || n.Reason != w.reason || !strings.Contains(n.Message, w.text) {
					t.Fatalf("message %d: got %v, want Nack %s containing %q", i, got, w.reason, w.text)
				}
				if strings.Contains(n.Message, "c2VjcmV0") {
					t.Fatalf("Nack leaks the handler error: %q", n.Message)
				}
				if u := msg.GetUpdate(); u != nil && len(u.Nonce) <= maxNonceLen && n.Nonce != u.Nonce {
					t.Fatalf("Nack nonce = %q, want %q", n.Nonce, u.Nonce)
				}
			}
			if got := hs.h.updateCount(); got != tt.wantApplied {
				t.Fatalf("handler applied %d updates, want %d", got, tt.wantApplied)
			}
		})
	}
}

func TestOpenRefused(t *testing.T) {
	tests := []struct {
		name     string
		first    *peerv1.Message
		wantErr  error
		wantCode codes.Code
		wantText string
	}{
		{name: "environment differs from the certificate", first: openMsg("eve", 1, nil), wantErr: ErrIdentity, wantCode: codes.PermissionDenied, wantText: `Open names environment "eve" but the certificate names "west"`},
		{name: "unsupported protocol", first: openMsg("west", 2, nil), wantErr: ErrProtocol, wantCode: codes.FailedPrecondition, wantText: "peer speaks protocol 2, this agent speaks 1"},
		{name: "update before open", first: trustUpdate("trust", 1, "n", "A"), wantErr: ErrProtocol, wantCode: codes.FailedPrecondition, wantText: "first message must be Open, got Update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, nil)
			hs.start()
			if hs.next().GetOpen() == nil {
				t.Fatal("first message is not Open")
			}
			hs.send(tt.first)
			err := hs.wait()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("serve() = %v, want %v", err, tt.wantErr)
			}
			st := status.Convert(toStatus(err))
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantText) {
				t.Fatalf("status = %v, want %v containing %q", st, tt.wantCode, tt.wantText)
			}
			if hs.h.connected != 0 || hs.m.Sessions()[0].Connected {
				t.Fatal("refused session reported as connected")
			}
		})
	}
}

func TestOutbox(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.MaxInFlight = 2 })
	m := hs.m
	creds := func(key string) *peerv1.Credentials {
		return &peerv1.Credentials{Link: &peerv1.Link{LocalNamespace: "ns", LocalElasticsearch: "es", Alias: "a"}, ApiKeyId: key}
	}
	res := credentialsResource("ns/es/a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Published before any session: provisional sequences.
	must(m.Publish("west", wrap(res, creds("k1"))))
	must(m.Publish("west", wrap(res, creds("k1")))) // identical: no-op
	must(m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T")})))
	must(m.Publish("west", wrap("status/x", &peerv1.LinkStatus{Connected: true})))

	t.Run("invalid publishes", func(t *testing.T) {
		for _, err := range []error{
			m.Publish("west", wrap(ResourceInventory, &peerv1.Trust{})),
			m.Publish("west", wrap("", &peerv1.Trust{})),
			m.Publish("West", wrap("trust", &peerv1.Trust{})),
			m.Publish("west", &peerv1.Update{Resource: "trust"}),
			m.Publish("west", &peerv1.Update{Resource: "trust", Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}}),
			m.Publish("west", &peerv1.Update{Resource: "trust", Payload: &peerv1.Update_Inventory{Inventory: &peerv1.Inventory{}}}),
			m.Publish("west", nil),
		} {
			if err == nil {
				t.Fatal("invalid Publish succeeded")
			}
		}
	})

	// The peer already holds trust@7 from an earlier incarnation of this agent: sequences are
	// continued above it and everything is sent (window 2), then the inventory.
	hs.start()
	hs.open("west", map[string]uint64{"trust": 7})
	u1, u2 := hs.nextUpdate(), hs.nextUpdate()
	if u1.Resource != res || u1.Sequence != 1 || u2.Resource != "status/x" {
		t.Fatalf("first updates = %v, %v", u1, u2)
	}
	select {
	case m := <-hs.pipe.out:
		if m.GetHeartbeat() == nil {
			t.Fatalf("sent %v beyond the in-flight window", m)
		}
	case <-time.After(100 * time.Millisecond):
	}
	hs.send(ackMsg(u1))
	u3 := hs.nextUpdate()
	if u3.Resource != "trust" || u3.Sequence != 8 {
		t.Fatalf("trust update = %v, want sequence 8 (continuing above the peer's 7)", u3)
	}
	hs.send(nackMsg(u2, "InvalidStatus"))
	inv := hs.nextUpdate()
	if got := strings.Join(inv.GetInventory().GetResources(), ","); inv.Resource != ResourceInventory || got != res+",status/x,trust" {
		t.Fatalf("inventory = %v", inv)
	}
	waitFor(t, "ack and nack callbacks", time.Second, func() bool {
		return hs.h.hasAck("west/"+res+"@1") && hs.h.get(func(h *fakeHandler) bool { return len(h.nacks) == 1 && h.nacks[0].reason == "InvalidStatus" })
	})

	t.Run("changed content gets the next sequence, removal too", func(t *testing.T) {
		hs.send(ackMsg(inv))
		must(m.Publish("west", wrap(res, creds("k2"))))
		u := hs.nextUpdate()
		if u.Sequence != 2 || u.GetCredentials().GetApiKeyId() != "k2" {
			t.Fatalf("update = %v", u)
		}
		hs.send(ackMsg(u))
		must(m.Remove("west", res))
		must(m.Remove("west", res)) // already removed: no-op
		u = hs.nextUpdate()
		if u.Sequence != 3 || u.GetRemoved() == nil {
			t.Fatalf("removal = %v", u)
		}
		hs.send(ackMsg(u))
	})

	t.Run("rate-limited updates are resent", func(t *testing.T) {
		must(m.Publish("west", wrap("status/y", &peerv1.LinkStatus{})))
		u := hs.nextUpdate()
		hs.send(nackMsg(u, ReasonRateLimited))
		again := hs.nextUpdate()
		if again.Resource != u.Resource || again.Sequence != u.Sequence || again.Nonce == u.Nonce {
			t.Fatalf("resend = %v, want %s@%d with a new nonce", again, u.Resource, u.Sequence)
		}
	})

	// Reconnect. The peer reports trust@8 applied (its Ack never came: it is reported now) and
	// only sequence 2 of the credentials (as if it lost the removal): the removal is resent,
	// status/x (refused before) is offered again, status/y (unacked) is resent.
	hs.pipe.close()
	if err := hs.wait(); err == nil {
		t.Fatal("session ended without error")
	}
	hs.start()
	hs.open("west", map[string]uint64{res: 2, "status/x": 0, "trust": 8})
	var got []string
	for {
		u := hs.nextUpdate()
		if u.GetInventory() != nil {
			break
		}
		got = append(got, fmt.Sprintf("%s@%d", u.Resource, u.Sequence))
		hs.send(ackMsg(u))
	}
	if want := res + "@3,status/x@1,status/y@1"; strings.Join(got, ",") != want {
		t.Fatalf("resent %v, want %s", got, want)
	}
	if !hs.h.hasAck("west/trust@8") {
		t.Fatal("an update applied by the peer without our seeing the Ack must be reported acknowledged")
	}
}

func TestReceiveDeadline(t *testing.T) {
	hs := newHarness(t, nil)
	hs.start()
	hs.open("west", nil) // announces 200ms heartbeats: 3x is below the 1s floor
	start := time.Now()
	err := hs.wait()
	if !errors.Is(err, ErrReceiveTimeout) {
		t.Fatalf("serve() = %v, want ErrReceiveTimeout", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("session ended after %v, want about 1s", d)
	}
	if status.Code(toStatus(err)) != codes.DeadlineExceeded {
		t.Fatalf("status = %v", toStatus(err))
	}
}

func TestHeartbeatsKeepSessionAlive(t *testing.T) {
	hs := newHarness(t, nil)
	hs.start()
	hs.open("west", nil)
	for range 8 {
		time.Sleep(200 * time.Millisecond)
		hs.send(&peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{}}})
	}
	select {
	case err := <-hs.done:
		t.Fatalf("session ended despite heartbeats: %v", err)
	default:
	}
	info := hs.m.Sessions()[0]
	if !info.Connected || info.PeerVersion != "peer-1.0" || info.PeerProtocol != 1 || time.Since(info.LastHeartbeat) > time.Second {
		t.Fatalf("session info = %+v", info)
	}
}

func TestTermination(t *testing.T) {
	t.Run("received", func(t *testing.T) {
		hs := newHarness(t, nil)
		hs.start()
		hs.open("west", nil)
		hs.send(&peerv1.Message{Kind: &peerv1.Message_Terminated{Terminated: &peerv1.Terminated{Reason: "unpaired"}}})
		if err := hs.wait(); !errors.Is(err, ErrTerminated) || toStatus(err) != nil {
			t.Fatalf("serve() = %v, want ErrTerminated (status OK)", err)
		}
		if !hs.h.get(func(h *fakeHandler) bool { return len(h.terminated) == 1 && h.terminated[0] == "west:unpaired" }) {
			t.Fatalf("HandleTerminated not called: %v", hs.h.terminated)
		}
		hs.start()
		if err := hs.wait(); !errors.Is(err, ErrPeerTerminated) {
			t.Fatalf("new session = %v, want ErrPeerTerminated", err)
		}
		// Ending the peering on this side too returns at once: there is nobody left to tell.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := hs.m.Terminate(ctx, "west", "the peering was deleted"); err != nil {
			t.Fatalf("Terminate() after the peer terminated = %v", err)
		}
		hs.m.Forget("west")
		hs.start()
		hs.open("west", nil)
		hs.pipe.close()
		hs.wait()
	})
	t.Run("requested while disconnected, sent on the next session", func(t *testing.T) {
		hs := newHarness(t, nil)
		sent := make(chan error, 1)
		go func() { sent <- hs.m.Terminate(t.Context(), "west", "unpaired") }()
		hs.start()
		hs.open("west", nil)
		m := hs.next()
		if m.GetTerminated().GetReason() != "unpaired" {
			t.Fatalf("got %v, want Terminated", m)
		}
		if err := <-sent; err != nil {
			t.Fatalf("Terminate() = %v", err)
		}
		if err := hs.wait(); !errors.Is(err, ErrTerminated) {
			t.Fatalf("serve() = %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	h := newFakeHandler()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "valid", cfg: Config{Environment: "east", Handler: h}},
		{name: "bad environment", cfg: Config{Environment: "East_1", Handler: h}, wantErr: `environment: invalid value "East_1"`},
		{name: "no handler", cfg: Config{Environment: "east"}, wantErr: "handler: a Handler is required"},
		{name: "update above message size", cfg: Config{Environment: "east", Handler: h, MaxUpdateBytes: 2 << 20, MaxMessageBytes: 1 << 20}, wantErr: "maxUpdateBytes: 2097152 exceeds maxMessageBytes 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewManager(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewManager() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{fmt.Errorf("%w by the peer: x", ErrTerminated), codes.OK},
		{ErrPeerTerminated, codes.FailedPrecondition},
		{fmt.Errorf("%w: x", ErrUnauthenticated), codes.Unauthenticated},
		{ErrReplaced, codes.Aborted},
		{ErrPairingDisabled, codes.Unimplemented},
		{fmt.Errorf("%w: the token expired", ErrPairingRefused), codes.PermissionDenied},
		{fmt.Errorf("%w: bad bundle", ErrPairingInvalid), codes.InvalidArgument},
		{fmt.Errorf("%w: peer x exists", ErrAlreadyPaired), codes.AlreadyExists},
		{status.Error(codes.Unavailable, "x"), codes.Unavailable},
		{errors.New("boom"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := status.Code(toStatus(tt.err)); got != tt.want {
				t.Fatalf("toStatus() code = %v, want %v", got, tt.want)
			}
		})
	}
}

// gatedStream blocks the session's sends while closed, as flow control does with a peer that
// stops reading.
type gatedStream struct {
	*pipeStream
	mu   sync.Mutex
	gate chan struct{}
}

func (g *gatedStream) block() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
}

func (g *gatedStream) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate)
}

func (g *gatedStream) Send(m *peerv1.Message) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case <-gate:
	case <-g.closed:
		return io.ErrClosedPipe
	}
	return g.pipeStream.Send(m)
}

// serveGated serves a session with west over a gatedStream, open (with the default 200ms
// heartbeats) and connected, whose sends the test can block.
func (hs *harness) serveGated() *gatedStream {
	hs.t.Helper()
	gs := &gatedStream{pipeStream: newPipe(), gate: make(chan struct{})}
	gs.release()
	hs.pipe = gs.pipeStream
	hs.done = make(chan error, 1)
	go func() {
		_, err := hs.m.serve(context.Background(), "west", gs, false)
		gs.close()
		hs.done <- err
	}()
	hs.t.Cleanup(gs.close)
	hs.open("west", nil)
	waitFor(hs.t, "session open", 2*time.Second, func() bool { return len(hs.m.Sessions()) == 1 && hs.m.Sessions()[0].Connected })
	return gs
}

// A peer that keeps talking while this agent is blocked sending to it is alive: the receive
// deadline must not fire on the messages queued meanwhile (it did, at random, when the deadline
// only counted messages the session loop had handled).
func TestBlockedSendIsNotPeerSilence(t *testing.T) {
	hs := newHarness(t, nil)
	gs := hs.serveGated() // 200ms heartbeats: the receive timeout is the 1s floor

	// The peer's heartbeats need no answer, so the send that blocks is the session's own
	// heartbeat, and nothing resets the deadline meanwhile. Five rounds: the old loop picked the
	// expired deadline over the queued messages at random, one round in two.
	heartbeat := &peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{}}}
	for round := range 5 {
		gs.block()
		for range 15 { // 1.5s: longer than the receive timeout
			hs.send(heartbeat)
			time.Sleep(100 * time.Millisecond)
		}
		gs.release()
		for i := range 4 {
			hs.send(heartbeat)
			time.Sleep(50 * time.Millisecond)
			select {
			case err := <-hs.done:
				t.Fatalf("round %d: session ended %d heartbeats after its send unblocked: %v", round, i, err)
			default:
			}
		}
	}
	// And silence still counts once nothing waits on this agent.
	if err := hs.wait(); !errors.Is(err, ErrReceiveTimeout) {
		t.Fatalf("serve() after the peer went silent = %v, want ErrReceiveTimeout", err)
	}
}

// A peer that keeps talking but stops reading shuts its flow-control window, so this agent's
// Send blocks: the session ends after SendTimeout with a named error rather than waiting forever
// (it did, in the hostile-peer e2e test, before sends had a bound).
func TestPeerThatStopsReadingEndsTheSession(t *testing.T) {
	hs := newHarness(t, func(c *Config) { c.SendTimeout = 500 * time.Millisecond })
	gs := hs.serveGated()

	gs.block() // never released: the peer reads nothing more
	start := time.Now()
	heartbeat := &peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{}}}
	giveUp := time.After(10 * time.Second)
	for {
		select {
		case err := <-hs.done:
			if !errors.Is(err, ErrSendTimeout) {
				t.Fatalf("serve() = %v, want ErrSendTimeout", err)
			}
			if status.Code(toStatus(err)) != codes.DeadlineExceeded {
				t.Fatalf("status = %v", toStatus(err))
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("session ended %v after the peer stopped reading, want about 0.5s (+ one heartbeat interval)", d)
			}
			return
		case <-time.After(100 * time.Millisecond):
			hs.send(heartbeat) // the peer stays alive: only the blocked send can end the session
		case <-giveUp:
			t.Fatal("the session did not end while the peer read nothing")
		}
	}
}
