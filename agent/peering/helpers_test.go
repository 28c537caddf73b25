package peering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Resource keys of the tests: the stream takes any key of the right syntax.
const resourceTrust = "trust"

func importResource(link string) string      { return "import/" + link }
func credentialsResource(link string) string { return "credentials/" + link }
func statusResource(link string) string      { return "status/" + link }

// wrap wraps payload as the update of resource, in the oneof field of its message type (the
// application's mapping is package protocol's Wrap, which this package cannot import).
func wrap(resource string, payload proto.Message) *peerv1.Update {
	u := &peerv1.Update{Resource: resource}
	want := payload.ProtoReflect().Descriptor().FullName()
	fields := u.ProtoReflect().Descriptor().Oneofs().ByName("payload").Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); f.Message() != nil && f.Message().FullName() == want {
			u.ProtoReflect().Set(f, protoreflect.ValueOfMessage(payload.ProtoReflect()))
			return u
		}
	}
	panic(fmt.Sprintf("no Update payload field holds a %s", want))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, cond)
}

type nackRec struct {
	resource, reason, message string
	seq                       uint64
}

// fakeHandler records everything and persists applied sequences like an application would,
// so that it survives a "restart" of the Manager using it.
type fakeHandler struct {
	mu           sync.Mutex
	applied      map[string]map[string]uint64
	updates      []*peerv1.Update
	inventories  [][]string
	terminated   []string
	acks         []string
	nacks        []nackRec
	connected    int
	disconnected int
	discErrs     []error
	refuse       func(peer string, u *peerv1.Update) error
}

func newFakeHandler() *fakeHandler { return &fakeHandler{applied: map[string]map[string]uint64{}} }

func (h *fakeHandler) AppliedSequences(peer string) map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.applied[peer])
}

func (h *fakeHandler) HandleUpdate(_ context.Context, peer string, u *peerv1.Update) error {
	h.mu.Lock()
	refuse := h.refuse
	h.mu.Unlock()
	if refuse != nil {
		if err := refuse(peer, u); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, proto.Clone(u).(*peerv1.Update))
	if h.applied[peer] == nil {
		h.applied[peer] = map[string]uint64{}
	}
	h.applied[peer][u.Resource] = u.Sequence
	return nil
}

func (h *fakeHandler) HandleInventory(_ context.Context, peer string, keys []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inventories = append(h.inventories, keys)
	return nil
}

func (h *fakeHandler) HandleTerminated(peer, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.terminated = append(h.terminated, peer+":"+reason)
}

func (h *fakeHandler) OnAck(peer, resource string, seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acks = append(h.acks, fmt.Sprintf("%s/%s@%d", peer, resource, seq))
}

func (h *fakeHandler) OnNack(peer, resource string, seq uint64, reason, message string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nacks = append(h.nacks, nackRec{resource: resource, seq: seq, reason: reason, message: message})
}

func (h *fakeHandler) OnConnected(SessionInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected++
}

func (h *fakeHandler) OnDisconnected(_ string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disconnected++
	h.discErrs = append(h.discErrs, err)
}

func (h *fakeHandler) get(f func(h *fakeHandler) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return f(h)
}

func (h *fakeHandler) hasAck(s string) bool {
	return h.get(func(h *fakeHandler) bool {
		for _, a := range h.acks {
			if a == s {
				return true
			}
		}
		return false
	})
}

func (h *fakeHandler) updateCount() int {
	n := 0
	h.get(func(h *fakeHandler) bool { n = len(h.updates); return true })
	return n
}

func (h *fakeHandler) lastUpdate(resource string) *peerv1.Update {
	var out *peerv1.Update
	h.get(func(h *fakeHandler) bool {
		for _, u := range h.updates {
			if u.Resource == resource {
				out = u
			}
		}
		return true
	})
	return out
}

// pipeStream is an in-memory msgStream: the test plays the peer.
type pipeStream struct {
	in     chan *peerv1.Message
	out    chan *peerv1.Message
	closed chan struct{}
	once   sync.Once
}

func newPipe() *pipeStream {
	return &pipeStream{in: make(chan *peerv1.Message, 64), out: make(chan *peerv1.Message, 256), closed: make(chan struct{})}
}

func (p *pipeStream) Send(m *peerv1.Message) error {
	select {
	case p.out <- proto.Clone(m).(*peerv1.Message):
		return nil
	case <-p.closed:
		return io.ErrClosedPipe
	}
}

func (p *pipeStream) Recv() (*peerv1.Message, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.closed:
		return nil, io.EOF
	}
}

func (p *pipeStream) close() { p.once.Do(func() { close(p.closed) }) }

// harness runs one session of a Manager ("east") with the test playing peer "west".
type harness struct {
	t    *testing.T
	m    *Manager
	h    *fakeHandler
	pipe *pipeStream
	done chan error
}

func testManagerConfig(env string, h Handler) Config {
	return Config{Environment: env, Version: "test", Handler: h, HeartbeatInterval: 200 * time.Millisecond, OpenTimeout: 2 * time.Second, RateLimitedRetry: 50 * time.Millisecond}
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := newFakeHandler()
	cfg := testManagerConfig("east", h)
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, m: m, h: h}
}

// start runs a session with peer "west" over a new pipe, as the Server would for a stream the
// peer dialed (no certificate chain: the pipe has none).
func (hs *harness) start() { hs.startWith(sessionOptions{}) }

// startWith runs a session with peer "west" over a new pipe, with options.
func (hs *harness) startWith(o sessionOptions) {
	hs.pipe = newPipe()
	hs.done = make(chan error, 1)
	pipe := hs.pipe
	go func() {
		_, err := hs.m.serveWith(context.Background(), "west", pipe, o)
		pipe.close()
		hs.done <- err
	}()
	hs.t.Cleanup(pipe.close)
}

func (hs *harness) send(m *peerv1.Message) { hs.pipe.in <- m }

// next returns the next message from the session other than a heartbeat.
func (hs *harness) next() *peerv1.Message {
	hs.t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case m := <-hs.pipe.out:
			if _, ok := m.Kind.(*peerv1.Message_Heartbeat); ok {
				continue
			}
			return m
		case <-timeout:
			hs.t.Fatal("timed out waiting for a message from the session")
			return nil
		}
	}
}

func (hs *harness) nextUpdate() *peerv1.Update {
	hs.t.Helper()
	m := hs.next()
	u := m.GetUpdate()
	if u == nil {
		hs.t.Fatalf("got %v, want an Update", m)
	}
	return u
}

// open reads the session's Open and answers with the peer's.
func (hs *harness) open(env string, applied map[string]uint64) *peerv1.Open {
	hs.t.Helper()
	o := hs.next().GetOpen()
	if o == nil {
		hs.t.Fatal("first message is not Open")
	}
	hs.send(openMsg(env, 1, applied))
	return o
}

func (hs *harness) wait() error {
	hs.t.Helper()
	select {
	case err := <-hs.done:
		return err
	case <-time.After(5 * time.Second):
		hs.t.Fatal("session did not end")
		return nil
	}
}

func openMsg(env string, protocol uint32, applied map[string]uint64) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Open{Open: &peerv1.Open{
		Environment: env, Version: "peer-1.0", Protocol: protocol, Applied: applied,
		HeartbeatInterval: durationpb.New(200 * time.Millisecond),
	}}}
}

func trustUpdate(resource string, seq uint64, nonce, bundle string) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Update{Update: &peerv1.Update{
		Resource: resource, Sequence: seq, Nonce: nonce,
		Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: []byte(bundle)}},
	}}}
}

func ackMsg(u *peerv1.Update) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Ack{Ack: &peerv1.Ack{Nonce: u.Nonce, Resource: u.Resource, Sequence: u.Sequence}}}
}

func nackMsg(u *peerv1.Update, reason string) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Nack{Nack: &peerv1.Nack{Nonce: u.Nonce, Resource: u.Resource, Sequence: u.Sequence, Reason: reason, Message: "no"}}}
}

func errIs(err, target error) bool { return errors.Is(err, target) }
