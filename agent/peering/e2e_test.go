package peering

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/internal/backoff"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// testAgent is one agent: identity, trust, handler, Manager, gRPC server on 127.0.0.1, Dialer.
type testAgent struct {
	t     *testing.T
	env   string
	clock backoff.Clock
	id    *identity.Identity
	trust *identitytest.Trust
	h     *fakeHandler
	peers *PeerSet

	m    *Manager
	addr string
	logs *testenv.LogBuffer
	// seen is the last client leaf the server verified, refused the last verification error.
	seen    atomic.Pointer[x509.Certificate]
	refused atomic.Pointer[error]
	stop    func()
}

func newAgent(t *testing.T, env string, clock backoff.Clock) *testAgent {
	t.Helper()
	id, err := identity.New(identity.Config{
		Environment: env, Namespace: "ecklink", Client: fake.NewClientset(), Endpoints: []string{"127.0.0.1:1"},
		CAValidity: 90 * time.Minute, LeafValidity: 3 * time.Minute, Overlap: 10 * time.Minute, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := id.Init(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = id.Run(ctx) }()
	a := &testAgent{t: t, env: env, clock: clock, id: id, trust: &identitytest.Trust{}, h: newFakeHandler(), peers: NewPeerSet(), logs: &testenv.LogBuffer{}}
	// Trust bundles received from a peer become that peer's trusted CAs, as the agent will do.
	a.h.refuse = func(peer string, u *peerv1.Update) error {
		if tr := u.GetTrust(); tr != nil {
			certs, err := pemutil.ValidateCABundle(tr.CaBundle, clock.Now(), pemutil.Limits{})
			if err != nil {
				return Refuse("InvalidCA", "%v", err)
			}
			a.trust.Set(peer, certs)
		}
		return nil
	}
	a.start()
	t.Cleanup(func() { a.stop(); cancel(); <-done })
	return a
}

func (a *testAgent) start() {
	t := a.t
	cfg := testManagerConfig(a.env, a.h)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: a.env, Level: hclog.Trace, Output: a.logs})
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Manager: m})
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := a.id.ServerTLSConfig(a.trust)
	verify := tlsConf.VerifyConnection
	tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err == nil {
			a.seen.Store(cs.PeerCertificates[0])
		} else {
			a.refused.Store(&err)
		}
		return err
	}
	// The agent's port: streams reach the Manager through the Port's split.
	port, err := NewPort(PortConfig{TLS: tlsConf, Server: srv, StopGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr, stopPort := startPort(t, port)
	d, err := NewDialer(DialerConfig{
		Manager: m, Peers: a.peers,
		TLSConfig: func(env string) *tls.Config { return a.id.ClientTLSConfig(a.trust, env) },
		Backoff:   backoff.Config{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	a.m, a.addr = m, addr
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			stopPort()
		})
	}
}

func (a *testAgent) restart() {
	a.stop()
	a.start()
}

// pair makes a and b trust each other and a dial b.
func pair(a, b *testAgent) {
	a.trust.Set(b.env, b.id.CACertificates())
	b.trust.Set(a.env, a.id.CACertificates())
	a.peers.Set(PeerInfo{Environment: b.env, Endpoints: []string{b.addr}, Dial: true})
}

func (a *testAgent) connected(peer string) bool {
	for _, s := range a.m.Sessions() {
		if s.Peer == peer {
			return s.Connected
		}
	}
	return false
}

func (a *testAgent) applied(peer, resource string) uint64 {
	var seq uint64
	a.h.get(func(h *fakeHandler) bool { seq = h.applied[peer][resource]; return true })
	return seq
}

const wait = 5 * time.Second

func importRequest(export string) *peerv1.ImportRequest {
	return &peerv1.ImportRequest{Link: &peerv1.Link{LocalNamespace: "ns", LocalElasticsearch: "es", Alias: "logs"}, ExportNamespace: "elastic", ExportName: export}
}

func TestSyncBothWays(t *testing.T) {
	clock := backoff.RealClock
	east, west := newAgent(t, "east", clock), newAgent(t, "west", clock)
	link := "ns/es/logs"
	// Published before the stream opens: the session's inventory (sent once its initial backlog
	// is out) then lists the import. Published after, it would be a plain update.
	if err := west.m.Publish("east", wrap(importResource(link), importRequest("logs"))); err != nil {
		t.Fatal(err)
	}
	if err := east.m.Publish("west", wrap(credentialsResource(link), &peerv1.Credentials{ApiKeyId: "id1", ApiKeyEncoded: "c2VjcmV0", ProxyAddress: "es.east:9443"})); err != nil {
		t.Fatal(err)
	}
	pair(west, east)
	waitFor(t, "both sides applied and acknowledged", wait, func() bool {
		return east.applied("west", importResource(link)) == 1 && west.applied("east", credentialsResource(link)) == 1 &&
			west.h.hasAck("east/import/"+link+"@1") && east.h.hasAck("west/credentials/"+link+"@1")
	})
	if got := west.h.lastUpdate(credentialsResource(link)).GetCredentials().GetProxyAddress(); got != "es.east:9443" {
		t.Fatalf("credentials proxy address = %q", got)
	}
	waitFor(t, "inventories", wait, func() bool {
		return east.h.get(func(h *fakeHandler) bool {
			return slices.ContainsFunc(h.inventories, func(keys []string) bool { return slices.Equal(keys, []string{importResource(link)}) })
		})
	})
	for _, tc := range []struct {
		a      *testAgent
		peer   string
		dialed bool
	}{{west, "east", true}, {east, "west", false}} {
		s := tc.a.m.Sessions()
		if len(s) != 1 || s[0].Peer != tc.peer || !s[0].Connected || s[0].Dialed != tc.dialed || s[0].PeerVersion != "test" || s[0].PeerProtocol != 1 {
			t.Fatalf("%s sessions = %+v", tc.a.env, s)
		}
	}
	if env, _ := identity.EnvironmentFromCertificate(east.seen.Load()); env != "west" {
		t.Fatalf("east's server saw client %q", env)
	}
	for _, a := range []*testAgent{east, west} {
		logs := a.logs.String()
		if !strings.Contains(logs, "stream open") || !strings.Contains(logs, "resource=credentials/ns/es/logs") {
			t.Fatalf("%s logs lack the expected lines:\n%s", a.env, logs)
		}
		if strings.Contains(logs, "c2VjcmV0") {
			t.Fatalf("%s logs leak payload contents:\n%s", a.env, logs)
		}
	}
}

func TestRestartResumesSequences(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	pair(west, east)
	r := importResource("ns/es/logs")
	for _, v := range []string{"v1", "v2", "v3"} {
		if err := west.m.Publish("east", wrap(r, importRequest(v))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "east applied sequence 3", wait, func() bool { return east.applied("west", r) == 3 })

	t.Run("sender restarts", func(t *testing.T) {
		west.restart()
		if err := west.m.Publish("east", wrap(r, importRequest("v3"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "east applied sequence 4", wait, func() bool { return east.applied("west", r) == 4 })
		if got := east.h.lastUpdate(r).GetImportRequest().GetExportName(); got != "v3" {
			t.Fatalf("content = %q", got)
		}
	})

	t.Run("receiver restarts", func(t *testing.T) {
		before := east.h.updateCount()
		connected := east.h.connected
		east.restart()
		west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{east.addr}, Dial: true})
		waitFor(t, "reconnected", wait, func() bool {
			return east.connected("west") && east.h.get(func(h *fakeHandler) bool { return h.connected > connected })
		})
		// The restarted receiver knows only the sequence it persisted, not the content: it asks
		// for the last update again (one resource here) and applies it, then nothing more.
		waitFor(t, "the last update re-delivered", wait, func() bool { return east.h.updateCount() == before+1 })
		time.Sleep(200 * time.Millisecond)
		if got := east.h.updateCount(); got != before+1 {
			t.Fatalf("east applied %d updates after its restart, want exactly the last one again", got-before)
		}
		if got := east.applied("west", r); got != 4 {
			t.Fatalf("east applied sequence %d after the re-delivery, want 4", got)
		}
		if err := west.m.Publish("east", wrap(r, importRequest("v4"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "east applied sequence 5", wait, func() bool { return east.applied("west", r) == 5 })
	})
}

func TestUnknownCAClientRefused(t *testing.T) {
	east := newAgent(t, "east", backoff.RealClock)
	rogue := newAgent(t, "rogue", backoff.RealClock)
	// rogue trusts east, east has never heard of rogue.
	rogue.trust.Set("east", east.id.CACertificates())
	d, err := NewDialer(DialerConfig{Manager: rogue.m, Peers: NewPeerSet(), TLSConfig: func(env string) *tls.Config { return rogue.id.ClientTLSConfig(rogue.trust, env) }})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := d.session(context.Background(), "east", east.addr)
	if err == nil || opened {
		t.Fatalf("session() = %v, %v; want a refusal", opened, err)
	}
	// With TLS 1.3 the client may see an alert, a reset or a broken pipe; the server's reason is
	// what matters.
	waitFor(t, "server-side refusal", wait, func() bool { return east.refused.Load() != nil })
	if got := (*east.refused.Load()).Error(); got != `environment "rogue" is not a paired peer` {
		t.Fatalf("server refused with %q", got)
	}
	if len(east.m.Sessions()) != 0 || east.seen.Load() != nil {
		t.Fatalf("east accepted the client: %+v", east.m.Sessions())
	}
}

func TestLeafRenewalDuringLiveStream(t *testing.T) {
	clock := backoff.NewFakeClock(time.Now())
	east, west := newAgent(t, "east", clock), newAgent(t, "west", clock)
	pair(west, east)
	waitFor(t, "connected", wait, func() bool { return east.connected("west") && west.connected("east") })
	first := east.seen.Load()
	since := east.m.Sessions()[0].Since

	clock.Advance(2 * time.Minute)
	waitFor(t, "leaf renewal", wait, func() bool { return west.id.Leaf().SerialNumber.Cmp(first.SerialNumber) != 0 })
	if err := west.m.Publish("east", wrap(statusResource("ns/es/logs"), &peerv1.LinkStatus{Connected: true})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "update over the live stream", wait, func() bool { return east.applied("west", statusResource("ns/es/logs")) == 1 })
	if s := east.m.Sessions()[0]; !s.Since.Equal(since) {
		t.Fatal("stream was re-established by the renewal")
	}
	// A new connection (same server, other address) handshakes with the new leaf.
	port := east.addr[strings.LastIndex(east.addr, ":"):]
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{"localhost" + port}, Dial: true})
	waitFor(t, "new handshake with the renewed leaf", wait, func() bool {
		seen := east.seen.Load()
		return seen.SerialNumber.Cmp(west.id.Leaf().SerialNumber) == 0 && east.connected("west")
	})
}

func TestCARotationWithPeer(t *testing.T) {
	ctx := context.Background()
	clock := backoff.RealClock
	east, west := newAgent(t, "east", clock), newAgent(t, "west", clock)
	pair(west, east)
	// west publishes its bundle whenever it changes, as the agent will.
	publishTrust := func() {
		t.Helper()
		if err := west.m.Publish("east", wrap(resourceTrust, &peerv1.Trust{CaBundle: west.id.Bundle()})); err != nil {
			t.Fatal(err)
		}
	}
	reconnect := func(name string) {
		t.Helper()
		host := "127.0.0.1"
		if cur := west.peers.Peers()[0].Endpoints[0]; strings.HasPrefix(cur, host) {
			host = "localhost"
		}
		west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{host + east.addr[strings.LastIndex(east.addr, ":"):]}, Dial: true})
		waitFor(t, name, wait, func() bool {
			seen := east.seen.Load()
			return seen != nil && seen.SerialNumber.Cmp(west.id.Leaf().SerialNumber) == 0 && east.connected("west")
		})
	}
	publishTrust()
	waitFor(t, "initial trust applied", wait, func() bool { return west.h.hasAck("east/trust@1") })

	// rotate has west take step of its CA rotation and publish its bundle, and waits until east
	// acknowledged it as trust@version and trusts cas CAs of west.
	rotate := func(bundle string, step func(context.Context) error, version, cas int) {
		t.Helper()
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
		publishTrust()
		waitFor(t, bundle+" bundle acknowledged", wait, func() bool { return west.h.hasAck("east/trust@" + strconv.Itoa(version)) })
		if n := len(east.trust.PeerCAs("west")); n != cas {
			t.Fatalf("east trusts %d CAs for west after the %s bundle, want %d", n, bundle, cas)
		}
	}
	rotate("staged", west.id.StageNextCA, 2, 2)
	if err := west.id.PromoteNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	reconnect("handshake with a leaf of the promoted CA")
	rotate("retired", west.id.RetirePrevious, 3, 1)
	reconnect("handshake after retiring the previous CA")

	// An invalid bundle is refused and the last good one kept.
	if err := west.m.Publish("east", wrap(resourceTrust, &peerv1.Trust{CaBundle: []byte("junk")})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "nack", wait, func() bool {
		return west.h.get(func(h *fakeHandler) bool {
			return slices.ContainsFunc(h.nacks, func(n nackRec) bool { return n.reason == "InvalidCA" && n.message == "no PEM certificate found" })
		})
	})
	if n := len(east.trust.PeerCAs("west")); n != 1 {
		t.Fatalf("east trusts %d CAs for west after a bad bundle, want 1", n)
	}
}

func TestTerminatedDelivered(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	pair(west, east)
	waitFor(t, "connected", wait, func() bool { return east.connected("west") })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := west.m.Terminate(ctx, "east", "unpaired"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "east told", wait, func() bool {
		return east.h.get(func(h *fakeHandler) bool { return slices.Equal(h.terminated, []string{"west:unpaired"}) })
	})
	time.Sleep(300 * time.Millisecond)
	if n := east.h.connected; n != 1 || east.connected("west") {
		t.Fatalf("west redialed after terminating (%d connections)", n)
	}
}

// silentServer accepts streams, sends Open, then never sends anything again.
type silentServer struct {
	peerv1.UnimplementedPeerServiceServer
	streams atomic.Int32
}

func (s *silentServer) Sync(stream grpc.BidiStreamingServer[peerv1.SyncRequest, peerv1.SyncResponse]) error {
	s.streams.Add(1)
	err := stream.Send(&peerv1.SyncResponse{Message: &peerv1.Message{Kind: &peerv1.Message_Open{Open: &peerv1.Open{
		Environment: "east", Protocol: 1, HeartbeatInterval: durationpb.New(100 * time.Millisecond),
	}}}})
	for err == nil {
		_, err = stream.Recv()
	}
	return nil
}

func TestHeartbeatTimeoutRedials(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	silent := &silentServer{}
	g := grpc.NewServer(append(PeerServerOptions(0), grpc.Creds(credentials.NewTLS(east.id.ServerTLSConfig(east.trust))))...)
	peerv1.RegisterPeerServiceServer(g, silent)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	east.trust.Set("west", west.id.CACertificates())
	west.trust.Set("east", east.id.CACertificates())
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{lis.Addr().String()}, Dial: true})

	waitFor(t, "a second stream after the receive deadline", wait, func() bool { return silent.streams.Load() >= 2 })
	waitFor(t, "disconnect reported", wait, func() bool {
		return west.h.get(func(h *fakeHandler) bool { return h.connected >= 2 && h.disconnected >= 1 })
	})
	if !west.h.get(func(h *fakeHandler) bool { return errIs(h.discErrs[0], ErrReceiveTimeout) }) {
		t.Fatalf("disconnected with %v, want ErrReceiveTimeout", west.h.discErrs)
	}
}

func TestDialerEndpointsAndPeerChanges(t *testing.T) {
	east, west := newAgent(t, "east", backoff.RealClock), newAgent(t, "west", backoff.RealClock)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	pair(west, east)
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{deadAddr, east.addr}, Dial: true})
	waitFor(t, "connected through the second endpoint", wait, func() bool { return east.connected("west") && west.connected("east") })

	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{east.addr}, Dial: false})
	waitFor(t, "stream closed when dialing is switched off", wait, func() bool { return !west.connected("east") })
	west.peers.Set(PeerInfo{Environment: "east", Endpoints: []string{east.addr}, Dial: true})
	waitFor(t, "connected again", wait, func() bool { return west.connected("east") })
	west.peers.Delete("east")
	waitFor(t, "stream closed when the peer is deleted", wait, func() bool { return !west.connected("east") && !east.connected("west") })
}
