package ha

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/pairing"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// The attack, from the issue: anonymous Pair calls and concurrent TLS connections at once, then
// Pair calls of 8 MiB, against the leader of two replicas.
const (
	floodPairCalls   = 5000
	floodWorkers     = 64
	floodConnections = 1000
	floodHold        = 20 * time.Second
	floodBigCalls    = 200
	floodBigSize     = 8 << 20
	floodSources     = 16
	// chartMemoryLimit is the chart's default resources.limits.memory.
	chartMemoryLimit = 256 << 20
)

// TestAnonymousFlood: anonymous clients attack the peer port of west's leader while the link
// west -> east is sampled every second (east's GET _remote/info, and the stream on both
// leaders): 5,000 Pair calls with guessed tokens from 64 clients, then 1,000 concurrent TLS
// connections held open (a paired agent must still connect meanwhile), then 200 concurrent Pair
// calls of 8 MiB, from 16 source addresses, with a token open on west so that Pair does its real
// work. The leader stays the leader (same process, the only Lease
// holder, renewals on time), no sample is disconnected, and the leader's memory stays under the
// chart's limit. The figures are printed for the record.
func TestAnonymousFlood(t *testing.T) {
	harness.RequireWorld(t, world)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	west, east := world.Clusters["west"], world.Clusters["east"]
	probe := floodLink(ctx, t, west, east)
	leader, eastLeader := leaderOf(ctx, t, west), leaderOf(ctx, t, east)
	pid := leader.Pid()
	rss0, _, err := leader.RSS()
	if err != nil {
		t.Fatal(err)
	}
	lease := harness.SampleLease(ctx, west.Env.Kube, harness.AgentNamespace, "ecklink-agent", 100*time.Millisecond)
	stream := sampleStream(ctx, leader, eastLeader, time.Second)
	openToken(ctx, t, west, "nobody")
	linesBefore := refusalLines(leader)
	target := leader.Flag("listen-address")
	sources := make([]net.IP, floodSources)
	for i := range sources {
		sources[i] = net.ParseIP(testbed.LoopbackIP())
	}

	start := time.Now()
	pairs := pairFlood(ctx, target, sources)
	flood := time.Since(start)
	// While the anonymous connections fill every anonymous slot, a paired agent still connects.
	eastLeaf, err := east.AgentLeaf(ctx, "east")
	if err != nil {
		t.Fatal(err)
	}
	var peerErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(5 * time.Second)
		peerErr = harness.TryClientCertificate(target, eastLeaf)
	})
	conns := holdConnections(ctx, target, sources)
	wg.Wait()
	start = time.Now()
	big := bigPairs(ctx, target, sources)
	bigTook := time.Since(start)
	time.Sleep(3 * time.Second) // the samplers see the aftermath too

	_, peak, err := leader.RSS()
	if err != nil {
		t.Fatalf("the leader is gone: %v", err)
	}
	metrics, _ := leader.Metrics(ctx)
	l, s, r := lease.Stop(), stream.stop(), probe.Stop()
	lines := refusalLines(leader) - linesBefore
	t.Logf("Pair flood: %d calls from %d sources in %s, answered %v", floodPairCalls, floodSources, flood.Round(100*time.Millisecond), pairs)
	t.Logf("TLS connections: %d opened at once: %d handshakes completed, %d refused before; the agent closed the others within %s (%d held %s); a paired agent connected meanwhile: %v",
		floodConnections, conns.handshaken, conns.refused, conns.longest.Round(100*time.Millisecond), conns.held, floodHold, peerErr == nil)
	t.Logf("8 MiB Pair calls: %d at once in %s, answered %v", floodBigCalls, bigTook.Round(100*time.Millisecond), big)
	t.Logf("the agent counted: peer port refusals %s; pairing refusals %s; %d refusal log lines", seriesOf(metrics, "ecklink_peer_port_refusals_total"), seriesOf(metrics, "ecklink_pairing_refusals_total"), lines)
	t.Logf("FIGURES: leader pid %d (running throughout: %v); Lease holders %v; %d renewals, max renewal gap %s (retry period %s, renew deadline %s); "+
		"link samples %d (%d disconnected); stream samples %d (%d down); leader RSS %s before, peak %s (chart limit %s)",
		pid, leader.Pid() == pid && leader.Running(), l.Holders, l.Renewals, l.MaxGap.Round(time.Millisecond), retryPeriod, renewDeadline,
		r.Samples, len(r.Disconnected), s.samples, len(s.down), mib(rss0), mib(peak), mib(chartMemoryLimit))

	if now := west.Leader(ctx); now != leader || leader.Pid() != pid {
		t.Errorf("west's leader changed during the flood")
	}
	if len(l.Holders) != 1 || l.Errors > 0 {
		t.Errorf("Lease holders %v (%d failed reads), want the one leader throughout", l.Holders, l.Errors)
	}
	if l.MaxGap >= 2*retryPeriod {
		t.Errorf("a renewal came %s after the one before: a retry period (%s) was missed", l.MaxGap, retryPeriod)
	}
	for _, d := range r.Disconnected {
		t.Errorf("link sample disconnected at %s: %s", d.At.Format(time.RFC3339Nano), d.Reason)
	}
	for _, d := range s.down {
		t.Errorf("stream sample down: %s", d)
	}
	if peak >= chartMemoryLimit {
		t.Errorf("the leader's peak RSS %s reached the chart's memory limit %s", mib(peak), mib(chartMemoryLimit))
	}
	if peerErr != nil {
		t.Errorf("a paired agent could not connect while anonymous connections were held: %v", peerErr)
	}
	if pairs[codes.OK.String()] > 0 || big[codes.OK.String()] > 0 {
		t.Errorf("an anonymous Pair call succeeded: %v, %v", pairs, big)
	}
	if lines > 40 {
		t.Errorf("%d refusal lines logged during the flood: refusals must be aggregated", lines)
	}
	if _, err := west.CRDs.Peers().Get(ctx, harness.AgentNamespace, "mallory"); err == nil {
		t.Error("the flood created a Peer")
	}
}

// floodLink exports west's "logs" to east's "ccs" in namespace flood and waits until a probe of
// east's GET _remote/info sees it connected.
func floodLink(ctx context.Context, t *testing.T, west, east *harness.Cluster) *harness.Probe {
	t.Helper()
	remote, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "flood", Name: "logs", Version: "9.3.2", RemoteClusterServer: true})
	if err != nil {
		t.Fatal(err)
	}
	local, err := east.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: "flood", Name: "ccs", Version: "9.3.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, "flood", "logs", "logs", remote.RemoteClusterAddress(), []string{"east"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := east.Import(ctx, "flood", "west", "ccs", "west", "west", "flood", "logs", nil); err != nil {
		t.Fatal(err)
	}
	probe := harness.StartProbe(ctx, local, "west", time.Second)
	t.Cleanup(func() { probe.Stop() })
	if _, err := probe.WaitConnected(ctx, 2*time.Minute); err != nil {
		rc, _ := east.CRDs.RemoteClusters().Get(ctx, "flood", "west")
		t.Fatalf("%v:%s", err, harness.DescribeConditions(rc))
	}
	return probe
}

func leaderOf(ctx context.Context, t *testing.T, c *harness.Cluster) *harness.Agent {
	t.Helper()
	var a *harness.Agent
	harness.WaitFor(ctx, t, 30*time.Second, c.Name+" has a leader", func() (bool, string) {
		a = c.Leader(ctx)
		return a != nil, ""
	})
	return a
}

// openToken stores a token for env in c, as agentctl pair token would: with a token open, the
// agent looks every guess up instead of refusing at once.
func openToken(ctx context.Context, t *testing.T, c *harness.Cluster, env string) {
	t.Helper()
	id, err := pairing.ReadIdentity(ctx, c.Env.Kube, harness.AgentNamespace)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pairing.NewToken(c.Name, id.Endpoints, id.Pins(), time.Now().Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Env.Kube.CoreV1().Secrets(harness.AgentNamespace).Create(ctx, pairing.TokenSecret(harness.AgentNamespace, tok, env), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Env.Kube.CoreV1().Secrets(harness.AgentNamespace).Delete(context.Background(), pairing.TokenSecretName(tok.ID), metav1.DeleteOptions{})
	})
}

// refusalLines counts the agent's log lines about refused anonymous clients and pairings.
func refusalLines(a *harness.Agent) int {
	return a.LogCount("refused an anonymous client") + a.LogCount("pairing refused: reason=") + a.LogCount("refused a connection")
}

// anonymousTLS is a joining agent's TLS configuration: no client certificate.
func anonymousTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}, InsecureSkipVerify: true} //nolint:gosec // the attacker does not care who answers
}

// dialFrom dials from the source address src.
func dialFrom(src net.IP) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
		return d.DialContext(ctx, "tcp", addr)
	}
}

func anonymousClient(target string, src net.IP, opts ...grpc.DialOption) (*grpc.ClientConn, peerv1.PeerServiceClient, error) {
	cc, err := grpc.NewClient("passthrough:///"+target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(anonymousTLS())), grpc.WithContextDialer(dialFrom(src)),
	}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	return cc, peerv1.NewPeerServiceClient(cc), nil
}

// tally counts answers by gRPC code.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]int{}
	}
	t.n[status.Code(err).String()]++
}

// pairFlood makes floodPairCalls Pair calls with random token ids and secrets from
// floodWorkers clients, each moving to a new connection (and source) every 10 calls or when
// the agent closed its connection.
func pairFlood(ctx context.Context, target string, sources []net.IP) map[string]int {
	var next atomic.Int64
	var answers tally
	var wg sync.WaitGroup
	for w := range floodWorkers {
		wg.Go(func() {
			var cc *grpc.ClientConn
			var client peerv1.PeerServiceClient
			defer func() {
				if cc != nil {
					cc.Close()
				}
			}()
			for i := 0; next.Add(1) <= floodPairCalls; i++ {
				if cc == nil || i%10 == 0 {
					if cc != nil {
						cc.Close()
					}
					var err error
					if cc, client, err = anonymousClient(target, sources[(w+i)%len(sources)]); err != nil {
						answers.add(err)
						cc = nil
						continue
					}
				}
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := client.Pair(callCtx, &peerv1.PairRequest{TokenId: randomHex(8), TokenSecret: randomHex(32),
					Identity: &peerv1.AgentIdentity{Environment: "mallory", Version: strings.Repeat("v", 64)}})
				cancel()
				answers.add(err)
				if status.Code(err) == codes.Unavailable {
					cc.Close()
					cc = nil
				}
			}
		})
	}
	wg.Wait()
	return answers.n
}

// connStats is what holdConnections saw: handshakes completed and refused, connections still
// open after floodHold, and the longest the agent kept one it closed.
type connStats struct {
	handshaken, refused, held int
	longest                   time.Duration
}

// holdConnections opens floodConnections anonymous TLS connections at once and holds each open,
// sending nothing, for floodHold or until the agent closes it.
func holdConnections(ctx context.Context, target string, sources []net.IP) connStats {
	var handshaken, refused, held, longest atomic.Int64
	var wg sync.WaitGroup
	for i := range floodConnections {
		wg.Go(func() {
			d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: sources[i%len(sources)]}, Timeout: 10 * time.Second}, Config: anonymousTLS()}
			c, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				refused.Add(1)
				return
			}
			defer c.Close()
			handshaken.Add(1)
			opened := time.Now()
			_ = c.SetReadDeadline(opened.Add(floodHold))
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						held.Add(1)
						return
					}
					for d := int64(time.Since(opened)); ; {
						if cur := longest.Load(); d <= cur || longest.CompareAndSwap(cur, d) {
							break
						}
					}
					return
				}
			}
		})
	}
	wg.Wait()
	return connStats{handshaken: int(handshaken.Load()), refused: int(refused.Load()), held: int(held.Load()), longest: time.Duration(longest.Load())}
}

// bigPairs makes floodBigCalls concurrent Pair calls of floodBigSize each, one connection each.
// The message is encoded once and shared (rawCodec): the test need not hold 1.6 GB itself.
func bigPairs(ctx context.Context, target string, sources []net.IP) map[string]int {
	payload, err := proto.Marshal(&peerv1.PairRequest{TokenId: randomHex(8), TokenSecret: strings.Repeat("A", floodBigSize),
		Identity: &peerv1.AgentIdentity{Environment: "mallory"}})
	if err != nil {
		panic(err)
	}
	var answers tally
	var wg sync.WaitGroup
	for i := range floodBigCalls {
		wg.Go(func() {
			cc, client, err := anonymousClient(target, sources[i%len(sources)], grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{payload})))
			if err != nil {
				answers.add(err)
				return
			}
			defer cc.Close()
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, err = client.Pair(callCtx, &peerv1.PairRequest{})
			answers.add(err)
		})
	}
	wg.Wait()
	return answers.n
}

// rawCodec sends a pre-encoded message whatever the call passes, and decodes answers as protobuf.
type rawCodec struct{ payload []byte }

func (c rawCodec) Marshal(any) ([]byte, error) { return c.payload, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	return proto.Unmarshal(data, v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// streamSampler reads ecklink_peer_up on both leaders every interval.
type streamSampler struct {
	cancel  context.CancelFunc
	done    chan struct{}
	samples int
	down    []string
}

func sampleStream(ctx context.Context, west, east *harness.Agent, interval time.Duration) *streamSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &streamSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for _, side := range []struct {
				a    *harness.Agent
				peer string
			}{{west, "east"}, {east, "west"}} {
				text, err := side.a.Metrics(ctx)
				if ctx.Err() != nil {
					return
				}
				up := harness.MetricSum(text, `ecklink_peer_up{peer="`+side.peer+`"}`)
				s.samples++
				if err != nil || up != 1 {
					s.down = append(s.down, fmt.Sprintf("%s: %s's stream with %s: up=%v %v", time.Now().Format(time.RFC3339Nano), side.a.Flag("environment"), side.peer, up, err))
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *streamSampler) stop() *streamSampler {
	s.cancel()
	<-s.done
	return s
}

// seriesOf renders the samples of one metric, e.g. {reason="rate_limited"} 4711, sorted.
func seriesOf(text, name string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if after, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(after, "{") || strings.HasPrefix(after, " ")) {
			out = append(out, strings.TrimSpace(after))
		}
	}
	sort.Strings(out)
	return "[" + strings.Join(out, ", ") + "]"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
