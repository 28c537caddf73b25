package peering

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/backoff"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func sessionOf(a *testAgent, peer string) SessionInfo {
	for _, s := range a.m.Sessions() {
		if s.Peer == peer {
			return s
		}
	}
	return SessionInfo{}
}

// TestStreamHealth: each side records the stream's endpoint and times, the last update each
// side applied, the last refusal each way (clipped), and why the stream ended or a dial failed.
func TestStreamHealth(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	long := strings.Repeat("x", 2000)
	east.h.mu.Lock()
	refuseTrust := east.h.refuse
	east.h.refuse = func(peer string, u *peerv1.Update) error {
		if strings.HasPrefix(u.GetResource(), "import/") && u.GetImportRequest().GetExportName() == "refused" {
			return Refuse("NotRequested", "refused on purpose \x07%s", long)
		}
		return refuseTrust(peer, u)
	}
	east.h.mu.Unlock()
	before := time.Now()
	pair(west, east)
	waitFor(t, "connected", wait, func() bool { return west.connected("east") && east.connected("west") })
	r := importResource("ns/es/logs")
	if err := west.m.Publish("east", wrap(r, importRequest("logs"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "applied", wait, func() bool { return sessionOf(west, "east").PeerLastApplied != nil })
	if err := west.m.Publish("east", wrap(r, importRequest("refused"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refused", wait, func() bool { return sessionOf(west, "east").LastNackReceived != nil })

	w, e := sessionOf(west, "east"), sessionOf(east, "west")
	if w.Endpoint != east.addr || e.Endpoint != "" {
		t.Errorf("endpoints: west dialed %q (want %q), east %q (want none: it did not dial)", w.Endpoint, east.addr, e.Endpoint)
	}
	if w.LastConnected.Before(before) || e.LastConnected.Before(before) || !w.LastDisconnected.IsZero() {
		t.Errorf("times: west connected %s disconnected %s, east connected %s", w.LastConnected, w.LastDisconnected, e.LastConnected)
	}
	if a := w.PeerLastApplied; a.Resource != r || a.Sequence != 1 {
		t.Errorf("west: peer last applied %+v, want %s@1", a, r)
	}
	if a := e.LastApplied; a == nil || a.Resource != r || a.Sequence != 1 {
		t.Errorf("east: last applied %+v, want %s@1", a, r)
	}
	for name, n := range map[string]*NackRecord{"west received": w.LastNackReceived, "east sent": e.LastNackSent} {
		if n == nil || n.Resource != r || n.Sequence != 2 || n.Reason != "NotRequested" || !strings.HasPrefix(n.Message, "refused on purpose x") ||
			len(n.Message) > healthMessageLen+3 || n.At.IsZero() {
			t.Errorf("%s: %+v", name, n)
		}
	}
	if w.LastError != "" || w.Failure != "" {
		t.Errorf("west reports an error on a healthy stream: %q (%s)", w.LastError, w.Failure)
	}

	east.stop()
	waitFor(t, "west sees the stream end", wait, func() bool { return !west.connected("east") })
	waitFor(t, "west fails to dial", wait, func() bool { return sessionOf(west, "east").Failure == FailureDial })
	w = sessionOf(west, "east")
	if w.LastDisconnected.IsZero() || !strings.Contains(w.LastError, "failed to connect to peer") || w.PeerLastApplied == nil || w.LastNackReceived == nil {
		t.Errorf("after the peer stopped: %+v", w)
	}
	east.start()
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{east.addr}, Dial: true})
	waitFor(t, "reconnected", wait, func() bool { return west.connected("east") })
	if w := sessionOf(west, "east"); w.LastError != "" || w.Failure != "" || !w.LastConnected.After(w.LastDisconnected) {
		t.Errorf("a stream that opened again still reports %q (%s), connected %s, disconnected %s", w.LastError, w.Failure, w.LastConnected, w.LastDisconnected)
	}
}

// TestDialerFollowsEndpoints: a stream on the preferred endpoint survives changes of the others;
// when the preferred endpoint changes, the dialer moves the stream to it, and an endpoint that
// fails is passed over for the next.
func TestDialerFollowsEndpoints(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	pair(west, east)
	waitFor(t, "connected", wait, func() bool { return west.connected("east") })
	port := east.addr[strings.LastIndex(east.addr, ":"):]
	other := "localhost" + port // the same server under another name: a moved endpoint
	since := sessionOf(west, "east").LastConnected

	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{east.addr, "127.0.0.1:1"}, Dial: true})
	time.Sleep(300 * time.Millisecond)
	if s := sessionOf(west, "east"); !s.Connected || !s.LastConnected.Equal(since) {
		t.Fatalf("a change of a non-preferred endpoint ended the stream: %+v\n%s", s, west.logs.String())
	}

	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{other, east.addr}, Dial: true})
	waitFor(t, "the stream moved to the new endpoint", wait, func() bool {
		s := sessionOf(west, "east")
		return s.Connected && s.Endpoint == other
	})

	// The first endpoint is dead: it is tried, then the next one opens the stream.
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{"127.0.0.1:1", east.addr}, Dial: true})
	waitFor(t, "the stream on the live endpoint", wait, func() bool {
		s := sessionOf(west, "east")
		return s.Connected && s.Endpoint == east.addr
	})
}

func TestDialOrder(t *testing.T) {
	for _, tc := range []struct {
		eps  []string
		good string
		want []string
	}{
		{[]string{"a:1", "b:1"}, "", []string{"a:1", "b:1"}},
		{[]string{"a:1", "b:1", "c:1"}, "b:1", []string{"b:1", "a:1", "c:1"}},
		{[]string{"a:1", "b:1"}, "gone:1", []string{"a:1", "b:1"}},
	} {
		t.Run(fmt.Sprint(tc.eps, tc.good), func(t *testing.T) {
			d := &dialTask{}
			d.setEndpoints(tc.eps)
			if tc.good != "" {
				d.lastGood.Store(&tc.good)
			}
			if got := d.order(); !slices.Equal(got, tc.want) {
				t.Fatalf("order() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		dial bool
		want string
	}{
		{fmt.Errorf("x: %w", ErrReceiveTimeout), false, FailureHeartbeat},
		{fmt.Errorf("%w by the peer: bye", ErrTerminated), false, FailureTerminated},
		{ErrPeerTerminated, true, FailureTerminated},
		{fmt.Errorf("%w: Open names another", ErrIdentity), false, FailureHandshake},
		{errors.New("rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: tls: bad certificate\""), true, FailureHandshake},
		{errors.New("rpc error: code = Unavailable desc = connection refused"), true, FailureDial},
		{errors.New("rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: EOF\""), true, FailureDial},
		{errors.New("transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"), true, FailureHandshake},
		{errors.New("peer closed the stream"), false, FailureStream},
	} {
		if got := classify(tc.err, tc.dial); got != tc.want {
			t.Errorf("classify(%q, %v) = %s, want %s", tc.err, tc.dial, got, tc.want)
		}
	}
}
