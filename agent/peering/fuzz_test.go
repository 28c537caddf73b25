package peering

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/internal/fuzzseed"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus")

type discardStream struct{ sent *int }

func (d discardStream) Send(*peerv1.Message) error   { *d.sent++; return nil }
func (discardStream) Recv() (*peerv1.Message, error) { select {} }

// fuzzSession returns an opened session of "east" with peer "west" whose outbox has two updates
// in flight (nonces f-1 and f-2), without its goroutines: the fuzz target drives handle directly.
func fuzzSession(t testing.TB, sent *int) (*session, *fakeHandler) {
	h := newFakeHandler()
	h.refuse = func(_ string, u *peerv1.Update) error {
		if u.GetRefusal() != nil {
			return Refuse("Refused", "refused")
		}
		return nil
	}
	m, err := NewManager(Config{Environment: "east", Handler: h, MaxUpdateBytes: 4096, UpdateBurst: 10})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T")}))
	_ = m.Publish("west", wrap("status/a", &peerv1.LinkStatus{}))
	s := &session{m: m, ps: m.peer("west"), stream: discardStream{sent: sent}, log: m.log, id: "f",
		limiter: newTokenBucket(1, 10, time.Now()), done: make(chan struct{}), cancel: func(error) {}}
	startWriter(t, s)
	s.retry = time.NewTimer(time.Hour)
	s.retry.Stop()
	if err := s.ps.attach(s); err != nil {
		t.Fatal(err)
	}
	if err := s.handle(context.Background(), openMsg("west", 1, map[string]uint64{"status/a": 0})); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	return s, h
}

// startWriter gives a session built by hand the writer goroutine serveWith starts, until the
// test ends.
func startWriter(t testing.TB, s *session) {
	s.out, s.sent = make(chan *peerv1.Message), make(chan error, 1)
	go s.writer()
	t.Cleanup(func() { close(s.out) })
}

// FuzzHandleMessage feeds arbitrary bytes, decoded as a Message, through the receive path of an
// opened session and of one awaiting Open: whatever arrives, nothing panics, every update gets
// exactly one answer, and no sequence held or applied passes MaxSequence (none wraps).
func FuzzHandleMessage(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := &peerv1.Message{}
		if err := proto.Unmarshal(data, msg); err != nil {
			return
		}
		sent := 0
		s, _ := fuzzSession(t, &sent)
		before := sent
		err := s.handle(context.Background(), msg)
		if msg.GetUpdate() != nil && err == nil && sent != before+1 {
			t.Fatalf("update answered %d times", sent-before)
		}
		if err == nil {
			_ = s.flush()
		}
		requireSequencesBounded(t, s.ps)
		fresh := &session{m: s.m, ps: newPeerState("west"), stream: discardStream{sent: &sent}, log: s.log, limiter: s.limiter, retry: s.retry}
		startWriter(t, fresh)
		// What the fresh session's peer applied of ours: the trust bundle, at sequence 1.
		_ = fresh.ps.set(&peerv1.Update{Resource: "trust", Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: []byte("T")}}}, false)
		fresh.ps.session = fresh
		if fresh.handle(context.Background(), msg) == nil {
			_ = fresh.ps.set(&peerv1.Update{Resource: "trust", Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: []byte("T2")}}}, false)
		}
		requireSequencesBounded(t, fresh.ps)
	})
}

// requireSequencesBounded fails if an outbox entry or a receiver record is past MaxSequence,
// or an outbox entry wrapped to 0.
func requireSequencesBounded(t *testing.T, ps *peerState) {
	t.Helper()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for r, e := range ps.entries {
		if e.seq == 0 || e.seq > MaxSequence || e.delivered > e.seq {
			t.Fatalf("outbox entry %s: sequence %d, delivered %d", r, e.seq, e.delivered)
		}
	}
	for r, rec := range ps.received {
		if rec.seq > MaxSequence {
			t.Fatalf("receiver record %s at sequence %d", r, rec.seq)
		}
	}
}

// TestFuzzSeedCorpus keeps the committed seeds in testdata/fuzz; run with -update to rewrite them.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzHandleMessage")
	if !*update {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("seed corpus missing in %s (run go test -run TestFuzzSeedCorpus -update): %v", dir, err)
		}
		return
	}
	upd := func(u *peerv1.Update) *peerv1.Message {
		return &peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}
	}
	link := &peerv1.Link{LocalNamespace: "ns", LocalElasticsearch: "es", Alias: "a"}
	seeds := map[string]*peerv1.Message{
		"open":        openMsg("west", 1, map[string]uint64{"trust": 3}),
		"open_wrong":  openMsg("eve", 2, nil),
		"credentials": upd(&peerv1.Update{Resource: "credentials/ns/es/a", Sequence: 1, Nonce: "n1", Payload: &peerv1.Update_Credentials{Credentials: &peerv1.Credentials{Link: link, ApiKeyId: "id", CaBundle: []byte("-----BEGIN CERTIFICATE-----\n")}}}),
		"import":      upd(&peerv1.Update{Resource: "import/ns/es/a", Sequence: 2, Nonce: "n2", Payload: &peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: link, ExportName: "logs"}}}),
		"refusal":     upd(&peerv1.Update{Resource: "credentials/x", Sequence: 1, Nonce: "n3", Payload: &peerv1.Update_Refusal{Refusal: &peerv1.Refusal{Reason: "ExportNotFound"}}}),
		"removed":     upd(&peerv1.Update{Resource: "trust", Sequence: 9, Nonce: "n4", Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}}),
		"inventory":   upd(&peerv1.Update{Resource: ResourceInventory, Nonce: "n5", Payload: &peerv1.Update_Inventory{Inventory: &peerv1.Inventory{Resources: []string{"trust"}}}}),
		"no_payload":  upd(&peerv1.Update{Resource: "trust", Sequence: 1}),
		"seq_zero":    upd(&peerv1.Update{Resource: "trust", Nonce: "n6", Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{}}}),
		"ack":         {Kind: &peerv1.Message_Ack{Ack: &peerv1.Ack{Nonce: "f-1", Resource: "trust", Sequence: 1}}},
		"nack":        {Kind: &peerv1.Message_Nack{Nack: &peerv1.Nack{Nonce: "f-2", Resource: "status/a", Sequence: 1, Reason: "InvalidCA", Message: "x"}}},
		"nack_rate":   {Kind: &peerv1.Message_Nack{Nack: &peerv1.Nack{Nonce: "f-1", Reason: ReasonRateLimited}}},
		"heartbeat":   {Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{}}},
		"terminated":  {Kind: &peerv1.Message_Terminated{Terminated: &peerv1.Terminated{Reason: "unpaired"}}},
		"empty":       {},
		// Sequences at and past 2^63, in updates and in Open's applied map.
		"seq_2_63":          upd(&peerv1.Update{Resource: "trust", Sequence: 1 << 63, Nonce: "n7", Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{}}}),
		"seq_max_uint64":    upd(&peerv1.Update{Resource: "status/b", Sequence: 1<<64 - 1, Nonce: "n8", Payload: &peerv1.Update_LinkStatus{LinkStatus: &peerv1.LinkStatus{}}}),
		"seq_max_allowed":   upd(&peerv1.Update{Resource: "trust", Sequence: MaxSequence, Nonce: "n9", Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{}}}),
		"open_applied_wrap": openMsg("west", 1, map[string]uint64{"trust": 1<<64 - 1}),
		"open_applied_max":  openMsg("west", 1, map[string]uint64{"trust": MaxSequence, "status/x": MaxSequence}),
		"open_applied_near": openMsg("west", 1, map[string]uint64{"trust": MaxSequence - 1}),
	}
	if err := fuzzseed.WriteProtos(dir, seeds); err != nil {
		t.Fatal(err)
	}
	// An update with a payload field from a future protocol version (field 17).
	inner := protowire.AppendTag(nil, 1, protowire.BytesType)
	inner = protowire.AppendString(inner, "trust")
	inner = protowire.AppendTag(inner, 2, protowire.VarintType)
	inner = protowire.AppendVarint(inner, 1)
	inner = protowire.AppendTag(inner, 17, protowire.BytesType)
	inner = protowire.AppendBytes(inner, []byte{0x08, 0x01})
	// Wrap as Message.update (field 2).
	msg := protowire.AppendTag(nil, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, inner)
	future := map[string][]byte{
		"future_payload": msg,
		"future_kind":    protowire.AppendBytes(protowire.AppendTag(nil, 9, protowire.BytesType), []byte{}),
	}
	if err := fuzzseed.WriteAll(dir, future); err != nil {
		t.Fatal(err)
	}
}
