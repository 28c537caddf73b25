package peering

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 60) }()
	select {
	case <-got:
		t.Fatal("acquired 60 of 40 free bytes")
	case <-time.After(50 * time.Millisecond):
	}
	b.release(60)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.release(60)
	// Larger than the budget: takes all of it, and passes alone.
	if err := b.acquire(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(cctx, 1); err == nil {
		t.Fatal("acquired a byte of an exhausted budget")
	}
	b.release(1000)
	if b.free != 100 {
		t.Fatalf("free = %d after releasing everything, want 100", b.free)
	}
}

// floodStream is a peer that sends its Open, then 2 MB updates as fast as the session reads
// them, and never reads what the session sends after its Open: every Send blocks.
type floodStream struct {
	received atomic.Int64
	sends    atomic.Int64
	block    chan struct{}
	big      *peerv1.Message
}

func (f *floodStream) Send(*peerv1.Message) error {
	if f.sends.Add(1) > 1 {
		<-f.block
	}
	return nil
}

func (f *floodStream) Recv() (*peerv1.Message, error) {
	if f.received.Add(1) == 1 {
		return openMsg("west", ProtocolVersion, nil), nil
	}
	return f.big, nil
}

// TestSessionBoundsQueuedBytes: while the session is stuck sending to a peer that does not read,
// it reads no more than its byte budget (2 × MaxMessageBytes) of the peer's messages, instead of
// filling its queue of 2 × MaxInFlight + 8 messages.
func TestSessionBoundsQueuedBytes(t *testing.T) {
	m, err := NewManager(Config{Environment: "east", Handler: newFakeHandler(), MaxMessageBytes: 4 << 20, MaxUpdateBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	big := &peerv1.Message{Kind: &peerv1.Message_Update{Update: &peerv1.Update{Resource: "trust", Sequence: 1, Nonce: "n",
		Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: bytes.Repeat([]byte("A"), 2<<20)}}}}}
	st := &floodStream{block: make(chan struct{}), big: big}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = m.serve(ctx, "west", st, false)
	}()
	time.Sleep(300 * time.Millisecond)
	read := st.received.Load() - 1
	cancel()
	close(st.block)
	<-done
	// The budget (8 MB) holds 4 messages of 2 MB; one more is in the loop's hands and one in
	// the receive goroutine's, waiting for budget.
	if read > 6 {
		t.Errorf("the session read %d messages of 2 MB while blocked, want at most 6 (the byte budget)", read)
	}
	t.Logf("read %d messages of 2 MB while blocked sending", read)
}
