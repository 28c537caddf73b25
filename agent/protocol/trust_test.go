package protocol

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peertrust"
	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

const testNS = "ecklink"

// fakeOutbox records what trust publishes and which peers acknowledged it.
type fakeOutbox struct {
	mu     sync.Mutex
	sent   map[string][]byte
	trusts map[string]*peerv1.Trust
	acked  map[string]bool
}

func (o *fakeOutbox) last(peer string) *peerv1.Trust {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trusts[peer]
}

func (o *fakeOutbox) Publish(peer string, u *peerv1.Update) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.trusts == nil {
		o.trusts = map[string]*peerv1.Trust{}
	}
	o.trusts[peer] = u.GetTrust()
	b := u.GetTrust().GetCaBundle()
	if string(o.sent[peer]) != string(b) {
		o.acked[peer] = false
	}
	o.sent[peer] = b
	return nil
}

func (o *fakeOutbox) Acknowledged(peer, resource string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return resource == ResourceTrust && o.acked[peer]
}

func (o *fakeOutbox) ack(peer string) {
	o.mu.Lock()
	o.acked[peer] = true
	o.mu.Unlock()
}

// crdPeers lists Peers straight from the API, as the cache would.
type crdPeers struct{ c *kube.Client }

func (p crdPeers) Peers() []*v1alpha1.Peer {
	l, _ := p.c.Peers().List(context.Background(), testNS, metav1.ListOptions{})
	return l
}

func (p crdPeers) Peer(env string) (*v1alpha1.Peer, bool) {
	x, err := p.c.Peers().Get(context.Background(), testNS, env)
	return x, err == nil
}

type trustFixture struct {
	t     *testing.T
	id    *identity.Identity
	clock *backoff.FakeClock
	out   *fakeOutbox
	crds  *kube.Client
	kube  *fake.Clientset
	store *peertrust.Store
	ts    *TrustSync
	busy  bool
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	f := &trustFixture{t: t, clock: backoff.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), out: &fakeOutbox{sent: map[string][]byte{}, acked: map[string]bool{}}}
	var err error
	if f.crds, err = kube.NewClient(kube.ClientConfig{Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kube.ListKinds)}); err != nil {
		t.Fatal(err)
	}
	if f.id, err = identity.New(identity.Config{Environment: "east", Namespace: testNS, Client: fake.NewClientset(), Clock: f.clock,
		CAValidity: time.Hour, LeafValidity: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := f.id.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.kube = fake.NewClientset()
	if f.store, err = peertrust.New(f.kube, testNS, nil); err != nil {
		t.Fatal(err)
	}
	if f.ts, err = NewTrustSync(TrustConfig{Identity: f.id, Outbox: f.out, Peers: crdPeers{f.crds}, CRDs: f.crds, Store: f.store, Namespace: testNS,
		Endpoints: []string{"agent.east.example:9400"}, Busy: func() bool { return f.busy }, Now: f.clock.Now}); err != nil {
		t.Fatal(err)
	}
	return f
}

// peer creates Peer env trusting a fresh agent CA of that environment, and returns its identity.
func (f *trustFixture) peer(env string) *identity.Identity {
	f.t.Helper()
	id, err := identity.New(identity.Config{Environment: env, Namespace: testNS, Client: fake.NewClientset(), Clock: f.clock, CAValidity: time.Hour, LeafValidity: time.Minute})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := id.Init(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	p := pairing.NewPeer(testNS, env, id.Bundle(), []string{env + ".example:9400"}, true, "")
	p.UID = types.UID("uid-" + env) // the fake API server assigns none
	if _, err := f.crds.Peers().Create(context.Background(), p); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// trusted returns the bundle the agent trusts for env now, and the Peer.
func (f *trustFixture) trusted(env string) (peertrust.Trust, *v1alpha1.Peer) {
	f.t.Helper()
	p, err := f.crds.Peers().Get(context.Background(), testNS, env)
	if err != nil {
		f.t.Fatal(err)
	}
	tr, err := f.store.Effective(context.Background(), p)
	if err != nil {
		f.t.Fatal(err)
	}
	return tr, p
}

func TestTrustGate(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	f.peer("west")
	f.peer("north")
	if err := f.id.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	if f.ts.gate() {
		t.Fatal("gate open before the bundle with the next CA was published")
	}
	f.ts.publishAll()
	if got := string(f.out.sent["west"]); got != string(f.id.Bundle()) || countCAs([]byte(got)) != 2 {
		t.Fatalf("west was sent %d CAs, want the bundle with the next CA", countCAs([]byte(got)))
	}
	f.out.ack("west")
	if f.ts.gate() {
		t.Fatal("gate open while north has not acknowledged")
	}
	f.out.ack("north")
	f.busy = true
	if f.ts.gate() {
		t.Fatal("gate open during a join")
	}
	f.busy = false
	if !f.ts.gate() {
		t.Fatal("gate closed although every peer acknowledged")
	}
	// A peer paired after the staging must acknowledge too.
	f.peer("south")
	if f.ts.gate() {
		t.Fatal("gate open while a new peer has not received the bundle")
	}
}

func TestHandleTrust(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	west := f.peer("west")
	stranger := f.peer("stranger")
	if err := west.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	staged := west.Bundle()

	tests := []struct {
		name       string
		peer       string
		bundle     []byte
		seq        uint64
		wantReason string
		wantCAs    int
	}{
		{name: "not a bundle", peer: "west", bundle: []byte("hello"), seq: 1, wantReason: ReasonInvalidCA},
		{name: "a wholesale swap", peer: "west", bundle: stranger.Bundle(), seq: 1, wantReason: ReasonTrustDiscontinuity},
		{name: "unknown peer", peer: "south", bundle: west.Bundle(), seq: 1, wantReason: ReasonNotPaired},
		{name: "next CA announced", peer: "west", bundle: staged, seq: 2, wantCAs: 2},
		{name: "same again", peer: "west", bundle: staged, seq: 2, wantCAs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.ts.HandleUpdate(ctx, tt.peer, &peerv1.Update{Resource: ResourceTrust, Sequence: tt.seq,
				Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: tt.bundle}}})
			if tt.wantReason != "" {
				ref, ok := err.(*peering.RefusalError)
				if !ok || ref.Reason != tt.wantReason {
					t.Fatalf("HandleUpdate() = %v, want refusal %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tr, p := f.trusted(tt.peer)
			certs, _ := pemutil.ParseCertificates(tr.Bundle, pemutil.Limits{})
			if len(certs) != tt.wantCAs || tr.Sequence != tt.seq || f.ts.AppliedSequence(ctx, p) != tt.seq || tr.Source != peertrust.SourceLearned {
				t.Fatalf("the agent trusts %d CAs at sequence %d from %s", len(certs), tr.Sequence, tr.Source)
			}
			if certs, _ := pemutil.ParseCertificates([]byte(p.Spec.CABundle), pemutil.Limits{}); len(certs) != 1 || len(p.Annotations) != 0 {
				t.Fatalf("Peer.spec changed: %d CAs, annotations %v", len(certs), p.Annotations)
			}
			if got := f.ts.WithApplied(tt.peer, nil)[ResourceTrust]; got != tt.seq {
				t.Fatalf("WithApplied() trust = %d, want %d", got, tt.seq)
			}
		})
	}

	t.Run("promotion then retirement keep continuity", func(t *testing.T) {
		if err := west.PromoteNextCA(ctx); err != nil {
			t.Fatal(err)
		}
		if err := west.RetirePrevious(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.ts.HandleTrust(ctx, "west", 3, &peerv1.Trust{CaBundle: west.Bundle()}); err != nil {
			t.Fatalf("HandleTrust() after the rotation = %v", err)
		}
		if tr, _ := f.trusted("west"); string(tr.Bundle) != string(west.Bundle()) {
			t.Fatal("the agent does not trust the rotated bundle")
		}
	})
	t.Run("a removal keeps the last good bundle", func(t *testing.T) {
		err := f.ts.HandleUpdate(ctx, "west", &peerv1.Update{Resource: ResourceTrust, Sequence: 4, Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}})
		if err != nil {
			t.Fatal(err)
		}
		if tr, _ := f.trusted("west"); !strings.Contains(string(tr.Bundle), "CERTIFICATE") {
			t.Fatal("bundle dropped")
		}
	})
}

// fakeStreams lists sessions and counts rechecks.
type fakeStreams struct {
	mu       sync.Mutex
	sessions []peering.SessionInfo
	rechecks int
}

func (s *fakeStreams) Sessions() []peering.SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *fakeStreams) RecheckAll() {
	s.mu.Lock()
	s.rechecks++
	s.mu.Unlock()
}

// TestRotationGates: what a requested rotation waits for, as the trust exchange reports it.
func TestRotationGates(t *testing.T) {
	ctx := context.Background()
	f := newTrustFixture(t)
	f.peer("west")
	f.peer("north")
	streams := &fakeStreams{}
	f.ts.cfg.Streams = streams
	oldLeaf := f.id.Leaf()
	if err := f.id.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.id.PromoteNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	promoted, newLeaf := f.id.PromotedAt(), f.id.Leaf()

	f.ts.publishAll()
	f.out.ack("west")
	if ok, waiting := f.ts.trusted(); ok || len(waiting) != 1 || waiting[0] != "north" {
		t.Fatalf("trusted() = %v %v, want north waiting", ok, waiting)
	}
	f.out.ack("north")
	if ok, waiting := f.ts.trusted(); !ok || len(waiting) != 0 {
		t.Fatalf("trusted() = %v %v after every acknowledgement", ok, waiting)
	}

	tests := []struct {
		name      string
		sessions  []peering.SessionInfo
		wantStale []string
	}{
		{name: "no streams"},
		{name: "dialed with a leaf of the new CA", sessions: []peering.SessionInfo{{Peer: "west", Connected: true, Dialed: true, LocalCertificate: newLeaf}}},
		{name: "dialed with a leaf of the old CA", sessions: []peering.SessionInfo{{Peer: "west", Connected: true, Dialed: true, LocalCertificate: oldLeaf}}, wantStale: []string{"west"}},
		{name: "dialed by the peer before the promotion", sessions: []peering.SessionInfo{{Peer: "north", Connected: true, Since: promoted.Add(-time.Second)}}, wantStale: []string{"north"}},
		{name: "dialed by the peer after the promotion", sessions: []peering.SessionInfo{{Peer: "north", Connected: true, Since: promoted.Add(time.Second)}}},
		{name: "a closed stream does not count", sessions: []peering.SessionInfo{{Peer: "north", Dialed: true, LocalCertificate: oldLeaf}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams.mu.Lock()
			streams.sessions = tt.sessions
			streams.mu.Unlock()
			ok, stale := f.ts.moved()
			if ok != (len(tt.wantStale) == 0) || strings.Join(stale, ",") != strings.Join(tt.wantStale, ",") {
				t.Fatalf("moved() = %v %v, want stale %v", ok, stale, tt.wantStale)
			}
		})
	}
}
