package faults

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// hostilePeer is the fake peer's environment.
const hostilePeer = "mallory"

// hostile is a RemoteCluster in east importing from the fake peer mallory, which fronts west's
// Elasticsearch "logs" by hand: it makes a cross-cluster API key there itself and sends it with
// west's transport CA, as a real exporter would, before it misbehaves.
type hostile struct {
	l      *link
	stream *harness.FakeStream
	creds  *peerv1.Credentials
	seq    uint64
}

// state is what must not change when mallory's updates are refused.
type state struct {
	configMap, secret map[string]string
	peerBundle        string
	keyID             string
}

// TestHostilePeer: a paired but misbehaving peer sends invalid material, rollbacks, unknown
// messages and floods. Each update is refused with a Nack whose reason names the problem, the
// last good state stays applied (the link connected; the ConfigMap, the Secret and the Peer's
// trust unchanged), the stream stays up, and the agent's memory stays bounded.
func TestHostilePeer(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	east := world.Clusters["east"]
	fake, err := harness.NewFakePeer(ctx, hostilePeer)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.PairWith(ctx, east); err != nil {
		t.Fatal(err)
	}
	h := &hostile{l: prepareHostileLink(ctx, t, "hostile", "mallory-logs")}
	defer h.cleanup(t)
	if h.stream, err = fake.Connect(ctx, east, nil); err != nil {
		t.Fatal(err)
	}
	defer h.stream.Close()

	// The good state: east asks for the link; mallory answers with a real key and west's CA.
	resource := "credentials/" + h.l.linkID()
	waitFor(ctx, t, time.Minute, "east's import request", func() (bool, string) {
		for _, u := range h.stream.Received() {
			if u.GetResource() == "import/"+h.l.linkID() && u.GetImportRequest() != nil {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d updates received", len(h.stream.Received()))
	})
	h.creds = h.goodCredentials(ctx, t)
	h.seq = 5
	if a := h.one(ctx, t, resource, h.seq, h.creds); !a.Acked {
		t.Fatalf("good credentials refused: %s: %s", a.Reason, a.Message)
	}
	probe := h.l.connect(ctx, t, 2*time.Minute)
	good := h.snapshot(ctx, t)

	with := func(f func(c *peerv1.Credentials)) *peerv1.Credentials {
		c := proto.Clone(h.creds).(*peerv1.Credentials)
		f(c)
		return c
	}
	bundle := func(b []byte) *peerv1.Credentials { return with(func(c *peerv1.Credentials) { c.CaBundle = b }) }
	ca := h.creds.GetCaBundle()
	other := with(func(c *peerv1.Credentials) { c.Link.Alias = "never-requested" })
	cases := []struct {
		name     string
		resource string
		seq      uint64
		payload  proto.Message // *peerv1.Credentials, *peerv1.Trust, or nil for an unknown payload
		reason   string
		want     string // in the Nack message
	}{
		{"not a CA", resource, h.seq + 1, bundle(selfSigned(t, false, time.Now().Add(time.Hour))), "InvalidCA", "not a CA"},
		{"expired CA", resource, h.seq + 1, bundle(selfSigned(t, true, time.Now().Add(-time.Hour))), "InvalidCA", "expired"},
		{"leaf instead of CA", resource, h.seq + 1, bundle(h.leafOfWest(ctx, t)), "InvalidCA", "not a CA"},
		{"garbage PEM", resource, h.seq + 1, bundle([]byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")), "InvalidCA", "certificate"},
		{"3 MB bundle", resource, h.seq + 1, bundle(bytes.Repeat(ca, 3<<20/len(ca)+1)), "InvalidCA", "at most 262144 allowed"},
		{"10 MB bundle", resource, h.seq + 1, bundle(bytes.Repeat(ca, 10<<20/len(ca)+1)), "TooLarge", "at most 4194304 allowed"},
		{"sequence rollback", resource, h.seq - 2, h.creds, "SequenceRollback", "below"},
		{"same sequence, other content", resource, h.seq, with(func(c *peerv1.Credentials) { c.ProxyAddress = "192.0.2.1:9443" }), "SequenceRollback", "different content"},
		{"sequence zero", resource, 0, h.creds, "InvalidSequence", "at least 1"},
		{"key for an alias never requested", "credentials/" + strings.TrimSuffix(h.l.linkID(), h.l.alias) + "never-requested", 1, other, "NotRequested", "no RemoteCluster requests link"},
		{"payload of another link", resource, h.seq + 1, other, "InvalidResource", "does not match"},
		{"key of another id", resource, h.seq + 1, with(func(c *peerv1.Credentials) {
			c.ApiKeyEncoded = base64.StdEncoding.EncodeToString([]byte("someone-else:c2VjcmV0"))
		}), "InvalidAPIKey", "does not hold api_key_id"},
		{"proxy address", resource, h.seq + 1, with(func(c *peerv1.Credentials) { c.ProxyAddress = "no-port" }), "InvalidAddress", "not host:port"},
		{"trust: not a CA", "trust", 1, &peerv1.Trust{CaBundle: selfSigned(t, false, time.Now().Add(time.Hour))}, "InvalidCA", "not a CA"},
		{"trust: garbage", "trust", 1, &peerv1.Trust{CaBundle: []byte("garbage")}, "InvalidCA", ""},
		{"unknown payload", resource, h.seq + 1, nil, "UnknownMessage", "no payload this agent knows"},
	}
	for _, tc := range cases {
		a := h.one(ctx, t, tc.resource, tc.seq, tc.payload)
		t.Logf("%-34s -> Nack %s: %.120s", tc.name, a.Reason, a.Message)
		if a.Acked || a.Reason != tc.reason || !strings.Contains(a.Message, tc.want) {
			t.Errorf("%s: answer %+v, want a Nack %s saying %q", tc.name, a, tc.reason, tc.want)
		}
	}
	// A message kind from a future protocol (Message field 9).
	unknown := &peerv1.Message{}
	unknown.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 9, protowire.BytesType), []byte("future")))
	if err := h.stream.Send(unknown); err != nil {
		t.Fatal(err)
	}
	if n, err := h.stream.WaitNack(ctx, 10*time.Second, func(n *peerv1.Nack) bool { return n.GetReason() == "UnknownMessage" && n.GetNonce() == "" }); err != nil {
		t.Errorf("unknown message kind: no Nack UnknownMessage: %v", err)
	} else {
		t.Logf("%-34s -> Nack %s: %s", "unknown message kind", n.GetReason(), n.GetMessage())
	}
	h.requireUnchanged(ctx, t, good, "after the invalid updates")

	// Floods: small updates beyond the rate limit, then updates of 12 MB, then heartbeats.
	rss0, peak0, err := east.Agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	heap0, err := east.Metric(ctx, "go_memstats_heap_inuse_bytes")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	reasons := h.answers(ctx, t, h.send(ctx, t, 3000, func(i int) (string, uint64, proto.Message) {
		return "credentials/" + other.GetLink().GetLocalNamespace() + "/ccs/never-requested", uint64(i + 1), other
	}))
	t.Logf("flood of 3000 small updates in %s: Nacks %v", time.Since(start).Round(time.Millisecond), reasons)
	if reasons["RateLimited"] == 0 || reasons["Ack"] > 0 || reasons["NotRequested"] == 0 {
		t.Errorf("small flood answered %v: want NotRequested up to the rate limit, RateLimited beyond, nothing applied", reasons)
	}
	big := &peerv1.Trust{CaBundle: bytes.Repeat([]byte("A"), 12<<20)}
	start = time.Now()
	reasons = h.answers(ctx, t, h.send(ctx, t, 40, func(i int) (string, uint64, proto.Message) { return "trust", uint64(i + 1), big }))
	t.Logf("flood of 40 updates of 12 MB in %s: Nacks %v", time.Since(start).Round(time.Millisecond), reasons)
	if reasons["Ack"] > 0 || reasons["TooLarge"]+reasons["RateLimited"] != 40 {
		t.Errorf("big flood answered %v: want TooLarge or RateLimited for each", reasons)
	}
	// The same while mallory does not read east's answers: 2000 small updates first, whose Nacks
	// fill the stream's window so that east's sends block, then 60 of 12 MB. What east buffers
	// from mallory meanwhile must stay bounded.
	h.stream.PauseReading()
	start = time.Now()
	sent := make(chan []string, 1)
	go func() { // blocks once east stops reading, so it is not the test's goroutine
		var out []string
		defer func() { sent <- out }()
		for i := range 2000 {
			u := update("credentials/"+other.GetLink().GetLocalNamespace()+"/ccs/never-requested", uint64(i+1), other)
			u.Nonce = h.stream.Nonce()
			if h.stream.Send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}) != nil {
				return
			}
			out = append(out, u.Nonce)
		}
		for i := range 60 {
			u := update("trust", uint64(i+1), big)
			u.Nonce = h.stream.Nonce()
			if h.stream.Send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}) != nil {
				return
			}
			out = append(out, u.Nonce)
		}
	}()
	time.Sleep(15 * time.Second)
	_, peakSlow, err := east.Agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	h.stream.ResumeReading()
	var nonces []string
	select {
	case nonces = <-sent:
	case <-time.After(2 * time.Minute):
		t.Fatalf("slow-reader flood: the sends did not finish within 2m of reading again (stream: %v)", h.stream.Err())
	}
	if len(nonces) != 2060 {
		t.Fatalf("slow-reader flood: %d of 2060 updates sent (stream: %v)", len(nonces), h.stream.Err())
	}
	reasons = h.answers(ctx, t, nonces)
	t.Logf("flood of 2000 small and 60 12 MB updates without reading the answers, in %s: Nacks %v; peak RSS %s",
		time.Since(start).Round(time.Millisecond), reasons, mib(peakSlow))
	if reasons["Ack"] > 0 {
		t.Errorf("slow-reader flood answered %v: nothing may be applied", reasons)
	}
	start = time.Now()
	for range 20000 {
		if err := h.stream.Send(&peerv1.Message{Kind: &peerv1.Message_Heartbeat{Heartbeat: &peerv1.Heartbeat{}}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("flood of 20000 heartbeats in %s", time.Since(start).Round(time.Millisecond))
	// What the agent holds comes back down: the heap in use returns within 16 MiB of before.
	// RSS is only reported: when the Go runtime returns freed pages to the system depends on
	// the OS's memory pressure, not on the agent.
	var rss1, peak1 int64
	var heap1 float64
	settled := waitFor(ctx, t, 3*time.Minute, "heap in use back within 16 MiB of before the floods", func() (bool, string) {
		if heap1, err = east.Metric(ctx, "go_memstats_heap_inuse_bytes"); err != nil {
			return false, err.Error()
		}
		return heap1-heap0 <= 16<<20, "heap in use " + mib(int64(heap1))
	})
	if rss1, peak1, err = east.Agent.RSS(); err != nil {
		t.Fatal(err)
	}
	t.Logf("east agent: RSS %s before the floods, peak %s during them, %s %s after (settled); heap in use %s before, %s after",
		mib(rss0), mib(peak1), mib(rss1), settled.Round(time.Second), mib(int64(heap0)), mib(int64(heap1)))
	if peak1-peak0 > 256<<20 {
		t.Errorf("peak RSS grew by %s during the floods", mib(peak1-peak0))
	}
	if heap1-heap0 > 16<<20 {
		t.Errorf("heap in use grew by %s with the floods", mib(int64(heap1-heap0)))
	}
	if err := h.stream.Err(); err != nil {
		t.Errorf("the stream ended: %v", err)
	}
	h.requireUnchanged(ctx, t, good, "after the floods")
	if !probe.Connected() {
		t.Error("the link is not connected after the floods")
	}
	r := probe.Stop()
	for _, s := range r.Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	t.Logf("probe: %d samples, %d connected", r.Samples, r.Connected)
}

// prepareHostileLink creates west's "logs" (the Elasticsearch mallory fronts; no export: west's
// agent is not involved), east's "ccs" and the RemoteCluster importing from mallory.
func prepareHostileLink(ctx context.Context, t *testing.T, ns, alias string) *link {
	t.Helper()
	l := &link{remote: world.Clusters["west"], local: world.Clusters["east"], ns: ns, alias: alias}
	var err error
	if l.remotePod, err = l.remote.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "9.3.2", RemoteClusterServer: true}); err != nil {
		t.Fatal(err)
	}
	if l.localPod, err = l.local.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "ccs", Version: "9.3.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.local.Import(ctx, ns, alias, "ccs", alias, hostilePeer, ns, "logs", nil); err != nil {
		t.Fatal(err)
	}
	return l
}

// goodCredentials makes a cross-cluster API key in west's "logs" and returns what a real exporter
// would send.
func (h *hostile) goodCredentials(ctx context.Context, t *testing.T) *peerv1.Credentials {
	t.Helper()
	c, err := h.l.remotePod.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/_security/cross_cluster/api_key",
		strings.NewReader(`{"name":"mallory","access":{"search":[{"names":["logs-*"]}]}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Perform(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var key struct{ ID, Encoded string }
	if err := json.Unmarshal(body, &key); err != nil || key.Encoded == "" {
		t.Fatalf("failed to create a key (status %d): %v", resp.StatusCode, err)
	}
	s, err := h.l.remote.Env.Kube.CoreV1().Secrets(h.l.ns).Get(ctx, "logs-es-transport-certs-public", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &peerv1.Credentials{
		Link:          &peerv1.Link{LocalNamespace: h.l.ns, LocalElasticsearch: "ccs", Alias: h.l.alias},
		Model:         peerv1.SecurityModel_SECURITY_MODEL_API_KEY,
		ApiKeyId:      key.ID,
		ApiKeyEncoded: key.Encoded,
		CaBundle:      s.Data["ca.crt"],
		ProxyAddress:  h.l.remotePod.RemoteClusterAddress(),
		ServerName:    "logs-es-remote-cluster." + h.l.ns + ".svc",
	}
}

// update wraps a payload; nil makes an update whose payload is a field from a future version.
func update(resource string, seq uint64, payload proto.Message) *peerv1.Update {
	u := &peerv1.Update{Resource: resource, Sequence: seq}
	switch p := payload.(type) {
	case *peerv1.Credentials:
		u.Payload = &peerv1.Update_Credentials{Credentials: p}
	case *peerv1.Trust:
		u.Payload = &peerv1.Update_Trust{Trust: p}
	case nil:
		u.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 17, protowire.BytesType), []byte{0x08, 0x01}))
	}
	return u
}

func (h *hostile) one(ctx context.Context, t *testing.T, resource string, seq uint64, payload proto.Message) harness.Answer {
	t.Helper()
	a, err := h.stream.Update(ctx, update(resource, seq, payload))
	if err != nil {
		t.Fatalf("update %s #%d: %v", resource, seq, err)
	}
	return a
}

// send sends n updates without waiting for their answers and returns their nonces.
func (h *hostile) send(ctx context.Context, t *testing.T, n int, gen func(i int) (string, uint64, proto.Message)) []string {
	t.Helper()
	nonces := make([]string, n)
	for i := range n {
		r, seq, p := gen(i)
		u := update(r, seq, p)
		u.Nonce = h.stream.Nonce()
		nonces[i] = u.Nonce
		if err := h.stream.Send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: u}}); err != nil {
			t.Fatalf("flood: update %d of %d: %v (stream: %v)", i+1, n, err, h.stream.Err())
		}
	}
	return nonces
}

// answers waits for the answers to nonces and counts them by reason ("Ack" for Acks).
func (h *hostile) answers(ctx context.Context, t *testing.T, nonces []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, nonce := range nonces {
		a, err := h.stream.Answer(ctx, nonce, time.Minute)
		if err != nil {
			t.Fatalf("flood: no answer to %s: %v", nonce, err)
		}
		if a.Acked {
			out["Ack"]++
		} else {
			out[a.Reason]++
		}
	}
	return out
}

func (h *hostile) snapshot(ctx context.Context, t *testing.T) state {
	t.Helper()
	var s state
	cm, err := h.l.localConfigMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.configMap = maps.Clone(cm.Data)
	sec, err := h.l.localSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.secret = map[string]string{}
	for k, v := range sec.Data {
		s.secret[k] = string(v)
	}
	if s.peerBundle, err = h.l.local.PeerTrust(ctx, hostilePeer); err != nil {
		t.Fatal(err)
	}
	rc, err := h.l.rc(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Status.APIKey != nil {
		s.keyID = rc.Status.APIKey.ID
	}
	return s
}

func (h *hostile) requireUnchanged(ctx context.Context, t *testing.T, good state, when string) {
	t.Helper()
	time.Sleep(2 * resync) // a window for a wrong change to land
	now := h.snapshot(ctx, t)
	if !maps.Equal(now.configMap, good.configMap) {
		t.Errorf("%s: the CA ConfigMap changed", when)
	}
	if !maps.Equal(now.secret, good.secret) {
		t.Errorf("%s: the credentials Secret changed", when)
	}
	if now.peerBundle != good.peerBundle {
		t.Errorf("%s: the Peer's trust bundle changed", when)
	}
	if now.keyID != good.keyID {
		t.Errorf("%s: the key in effect changed from %s to %s", when, good.keyID, now.keyID)
	}
	if err := h.stream.Err(); err != nil {
		t.Errorf("%s: the stream ended: %v", when, err)
	}
}

// cleanup removes the RemoteCluster, then the Peer.
func (h *hostile) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crds := h.l.local.CRDs
	_ = crds.RemoteClusters().Delete(ctx, h.l.ns, h.l.alias)
	for ctx.Err() == nil {
		if _, err := crds.RemoteClusters().Get(ctx, h.l.ns, h.l.alias); apierrors.IsNotFound(err) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := crds.Peers().Delete(ctx, harness.AgentNamespace, hostilePeer); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("failed to delete Peer %s: %v", hostilePeer, err)
	}
}

// leafOfWest returns, as PEM, the leaf certificate west's remote cluster server presents.
func (h *hostile) leafOfWest(ctx context.Context, t *testing.T) []byte {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only reads the certificate
	c, err := d.DialContext(ctx, "tcp", h.l.remotePod.RemoteClusterAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
}

// selfSigned returns a self-signed certificate, a CA or not, valid until notAfter.
func selfSigned(t *testing.T, isCA bool, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "mallory"},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
