package protocol

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/exporter"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/importer"
	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakekube"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/metrics"
	"github.com/ecklink/ecklink/agent/pairing"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peertrust"
	"github.com/ecklink/ecklink/internal/fuzzseed"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

var updateRouterSeeds = flag.Bool("update-router-seeds", false, "rewrite the committed seed corpus of FuzzRouterUpdate")

// The fuzzed router belongs to environment "east"; its peer "west" is paired, and east has a
// RemoteCluster search/west-logs (Elasticsearch ccs) importing from west, so credentials for that
// link reach the importer's validation.
const (
	fuzzPeer  = "west"
	fuzzNS    = "search"
	fuzzAlias = "west-logs"
)

// nopStream accepts everything the halves and the trust exchange publish.
type nopStream struct{}

func (nopStream) Publish(string, *peerv1.Update) error { return nil }
func (nopStream) Remove(string, string) error          { return nil }
func (nopStream) Acknowledged(string, string) bool     { return false }
func (nopStream) Resync(string)                        {}

// noElastic is an Elasticsearch that cannot be reached; the handlers never call it.
type noElastic struct{}

func (noElastic) Client(context.Context, elastic.Target) (*elastic.Client, error) {
	return nil, errors.New("no Elasticsearch in this test")
}

type routerFixture struct {
	r *Router
}

var (
	fuzzOnce    sync.Once
	fuzzFixture *routerFixture
	fuzzErr     error
)

// newRouterFixture builds the router of the agent with its real exporter, importer and trust
// sync over fake Kubernetes clients, with the informers synced. It is built once per process.
func newRouterFixture(tb testing.TB) *routerFixture {
	tb.Helper()
	fuzzOnce.Do(func() { fuzzFixture, fuzzErr = buildRouterFixture() })
	if fuzzErr != nil {
		tb.Fatal(fuzzErr)
	}
	return fuzzFixture
}

func buildRouterFixture() (*routerFixture, error) {
	ctx := context.Background()
	// West is paired with the bundle of the committed "trust" seed, so that seed is a valid
	// announcement of the same CA.
	westBundle, err := seedTrustBundle()
	if err != nil {
		return nil, err
	}
	rc := &v1alpha1.RemoteCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindRemoteCluster},
		ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNS, Name: fuzzAlias, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.RemoteClusterSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "ccs"}, Alias: fuzzAlias, Peer: fuzzPeer,
			Export: v1alpha1.ExportReference{Namespace: "elastic", Name: "logs"}},
	}
	peer := pairing.NewPeer(testNS, fuzzPeer, westBundle, []string{"west.example:9400"}, true, "")
	peer.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindPeer}
	// The export west imports from this agent (the seeds' import requests ask for it).
	export := &v1alpha1.ClusterExport{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindClusterExport},
		ObjectMeta: metav1.ObjectMeta{Namespace: "elastic", Name: "logs"},
		Spec:       v1alpha1.ClusterExportSpec{ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"}, Peers: []string{fuzzPeer}},
	}
	dyn, err := fakekube.NewDynamic([]runtime.Object{rc, peer, export})
	if err != nil {
		return nil, err
	}
	kc := fake.NewClientset()
	crds, err := kube.NewClient(kube.ClientConfig{Dynamic: dyn})
	if err != nil {
		return nil, err
	}
	log := hclog.NewNullLogger()
	c, err := cache.New(cache.Config{Kube: kc, Dynamic: dyn, AgentNamespace: testNS, Logger: log})
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	deps := halves.Deps{Environment: "east", Cache: c, Kube: kc, Dynamic: dyn, CRDs: crds, Elastic: noElastic{}, Metrics: m, Logger: log}
	exp, err := exporter.New(exporter.Config{Deps: deps, Outbox: NewOutbox(nopStream{})})
	if err != nil {
		return nil, err
	}
	imp, err := importer.New(importer.Config{Deps: deps, Outbox: NewOutbox(nopStream{})})
	if err != nil {
		return nil, err
	}
	self, err := identity.New(identity.Config{Environment: "east", Namespace: testNS, Client: kc})
	if err != nil {
		return nil, err
	}
	if err := self.Init(ctx); err != nil {
		return nil, err
	}
	store, err := peertrust.New(kc, testNS, nil)
	if err != nil {
		return nil, err
	}
	ts, err := NewTrustSync(TrustConfig{Identity: self, Outbox: nopStream{}, Peers: crdPeers{crds}, CRDs: crds, Store: store, Namespace: testNS})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return &routerFixture{r: &Router{exp: exp, imp: imp, metrics: m, trust: ts, log: log}}, nil
}

const seedDir = "testdata/fuzz/FuzzRouterUpdate"

// seedTrustBundle reads the CA bundle of the committed "trust" seed.
func seedTrustBundle() ([]byte, error) {
	u, err := readSeed("trust")
	if err != nil {
		return nil, err
	}
	return u.GetTrust().GetCaBundle(), nil
}

func readSeed(name string) (*peerv1.Update, error) {
	raw, err := os.ReadFile(filepath.Join(seedDir, name))
	if err != nil {
		return nil, fmt.Errorf("failed to read seed (go test -run TestRouterFuzzSeeds -update-router-seeds): %w", err)
	}
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 {
		return nil, fmt.Errorf("seed %s is malformed", name)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", name, err)
	}
	u := &peerv1.Update{}
	if err := proto.Unmarshal([]byte(data), u); err != nil {
		return nil, fmt.Errorf("seed %s: %w", name, err)
	}
	return u, nil
}

// longCA returns a self-signed CA valid for a century, so that the committed seeds stay valid.
func longCA(cn string) []byte {
	now := time.Now()
	c, _ := testenv.Make(testenv.Spec{CN: cn, Serial: now.UnixNano(), NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(100, 0, 0),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign})
	return c.PEM()
}

// FuzzRouterUpdate feeds arbitrary bytes, decoded as an Update from the paired peer, through the
// router to the halves that own them (exporter: import requests, link status, removals;
// importer: credentials, refusals, removals; trust sync: agent CA bundles; both: inventories).
// Whatever arrives: nothing panics; a refusal has a reason and a bounded message; and no Nack
// message echoes the API key or CA material the update carried.
func FuzzRouterUpdate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &peerv1.Update{}
		if err := proto.Unmarshal(data, u); err != nil {
			return
		}
		fx := newRouterFixture(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if inv := u.GetInventory(); inv != nil {
			if err := fx.r.HandleInventory(ctx, fuzzPeer, inv.GetResources()); err != nil {
				t.Fatalf("inventory refused: %v", err)
			}
			return
		}
		err := fx.r.HandleUpdate(ctx, fuzzPeer, u)
		if err == nil {
			return
		}
		var ref *peering.RefusalError
		if !errors.As(err, &ref) {
			return // reported to the peer as Internal, with a generic message
		}
		if ref.Reason == "" || len(ref.Reason) > 64 {
			t.Fatalf("refusal reason %q: want 1-64 characters", ref.Reason)
		}
		if len(ref.Message) > 4096 {
			t.Fatalf("refusal message is %d bytes", len(ref.Message))
		}
		for _, secret := range secretsOf(u) {
			if strings.Contains(ref.Message, secret) {
				t.Fatalf("refusal message echoes secret material %q: %s", secret, ref.Message)
			}
		}
	})
}

// secretsOf lists the values in u that must never be echoed: the encoded API key and the
// secret inside it, and the bodies of the PEM bundles, long enough not to match by chance.
func secretsOf(u *peerv1.Update) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 12 {
			out = append(out, s)
		}
	}
	c := u.GetCredentials()
	add(c.GetApiKeyEncoded())
	if raw, err := base64.StdEncoding.DecodeString(c.GetApiKeyEncoded()); err == nil {
		if _, secret, ok := strings.Cut(string(raw), ":"); ok {
			add(secret)
		}
	}
	for _, b := range [][]byte{c.GetCaBundle(), u.GetTrust().GetCaBundle(), u.GetImportRequest().GetTransportCaBundle()} {
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "-----") {
				add(strings.TrimSpace(line))
			}
		}
	}
	return out
}

// TestRouterFuzzSeeds checks that the committed seed corpus exists and runs it; with
// -update-router-seeds it rewrites it.
func TestRouterFuzzSeeds(t *testing.T) {
	dir := seedDir
	if !*updateRouterSeeds {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("seed corpus missing in %s (run go test -run TestRouterFuzzSeeds -update-router-seeds): %v", dir, err)
		}
		return
	}
	l := &peerv1.Link{LocalNamespace: fuzzNS, LocalElasticsearch: "ccs", Alias: fuzzAlias}
	key := base64.StdEncoding.EncodeToString([]byte("key-id:c2VjcmV0LXZhbHVlLW9mLWEta2V5"))
	creds := &peerv1.Credentials{Link: l, Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: "key-id", ApiKeyEncoded: key,
		CaBundle: longCA("elastic-transport-ca"), ProxyAddress: "logs.west.example:9443", ServerName: "logs-es-remote-cluster.elastic.svc"}
	res := "credentials/" + fuzzNS + "/ccs/" + fuzzAlias
	seeds := map[string]*peerv1.Update{
		"credentials": {Resource: res, Sequence: 1, Nonce: "n", Payload: &peerv1.Update_Credentials{Credentials: creds}},
		"credentials_unchanged_key": {Resource: res, Sequence: 2, Payload: &peerv1.Update_Credentials{Credentials: func() *peerv1.Credentials {
			c := proto.Clone(creds).(*peerv1.Credentials)
			c.ApiKeyEncoded = ""
			return c
		}()}},
		"credentials_not_requested": {Resource: "credentials/" + fuzzNS + "/ccs/other", Sequence: 1, Payload: &peerv1.Update_Credentials{Credentials: func() *peerv1.Credentials {
			c := proto.Clone(creds).(*peerv1.Credentials)
			c.Link.Alias = "other"
			return c
		}()}},
		"credentials_garbage_ca": {Resource: res, Sequence: 3, Payload: &peerv1.Update_Credentials{Credentials: func() *peerv1.Credentials {
			c := proto.Clone(creds).(*peerv1.Credentials)
			c.CaBundle = []byte("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n")
			return c
		}()}},
		"refusal":                  {Resource: res, Sequence: 4, Payload: &peerv1.Update_Refusal{Refusal: &peerv1.Refusal{Link: l, Reason: "PeerNotGranted", Message: "no"}}},
		"removed":                  {Resource: res, Sequence: 5, Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}},
		"import":                   {Resource: "import/" + fuzzNS + "/ccs/" + fuzzAlias, Sequence: 1, Payload: &peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: l, ExportNamespace: "elastic", ExportName: "logs", Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY}}},
		"import_removed":           {Resource: "import/" + fuzzNS + "/ccs/" + fuzzAlias, Sequence: 2, Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}},
		"link_status":              {Resource: "status/" + fuzzNS + "/ccs/" + fuzzAlias, Sequence: 1, Payload: &peerv1.Update_LinkStatus{LinkStatus: &peerv1.LinkStatus{Link: l, AppliedApiKeyId: "key-id", Connected: true, AppliedCaFingerprints: []string{strings.Repeat("ab", 32)}}}},
		"link_status_long_message": {Resource: "status/" + fuzzNS + "/ccs/" + fuzzAlias, Sequence: 2, Payload: &peerv1.Update_LinkStatus{LinkStatus: &peerv1.LinkStatus{Link: l, Message: strings.Repeat("m", 2048)}}},
		"import_not_granted":       {Resource: "import/" + fuzzNS + "/ccs/other", Sequence: 1, Payload: &peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: &peerv1.Link{LocalNamespace: fuzzNS, LocalElasticsearch: "ccs", Alias: "other"}, ExportNamespace: "elastic", ExportName: "secret"}}},
		"import_bad_version":       {Resource: "import/" + fuzzNS + "/ccs/" + fuzzAlias, Sequence: 3, Payload: &peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: l, ExportNamespace: "elastic", ExportName: "logs", ElasticsearchVersion: strings.Repeat("9", 4096)}}},
		"trust":                    {Resource: ResourceTrust, Sequence: 1, Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: longCA("west-agent-ca")}}},
		"trust_garbage":            {Resource: ResourceTrust, Sequence: 2, Payload: &peerv1.Update_Trust{Trust: &peerv1.Trust{CaBundle: []byte("garbage")}}},
		"inventory":                {Resource: peering.ResourceInventory, Payload: &peerv1.Update_Inventory{Inventory: &peerv1.Inventory{Resources: []string{res, "import/x/y/z", "trust"}}}},
		"mismatch":                 {Resource: "status/" + fuzzNS + "/ccs/other", Sequence: 1, Payload: &peerv1.Update_LinkStatus{LinkStatus: &peerv1.LinkStatus{Link: l}}},
		"bad_resource":             {Resource: "credentials/../../x", Sequence: 1, Payload: &peerv1.Update_Removed{Removed: &peerv1.Removed{}}},
		"no_payload":               {Resource: res, Sequence: 1},
	}
	if err := fuzzseed.WriteProtos(dir, seeds); err != nil {
		t.Fatal(err)
	}
	// A payload field of a future protocol version (Update field 17).
	future := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), res)
	future = protowire.AppendBytes(protowire.AppendTag(future, 17, protowire.BytesType), []byte{0x08, 0x01})
	if err := fuzzseed.Write(dir, "future_payload", future); err != nil {
		t.Fatal(err)
	}
}

// TestRouterAnswers runs the seeds through the router and checks the answer of each: the
// fixture is what the fuzz target explores from.
func TestRouterAnswers(t *testing.T) {
	fx := newRouterFixture(t)
	for _, seed := range []struct{ name, want string }{
		{"import", ""},
		{"import_not_granted", "PeerNotGranted"},
		{"import_bad_version", "InvalidImport"},
		{"link_status", ""},
		{"link_status_long_message", "InvalidLinkStatus"},
		{"import_removed", ""},
		{"credentials", ""},
		{"credentials_unchanged_key", ""},
		{"credentials_not_requested", "NotRequested"},
		{"credentials_garbage_ca", "InvalidCA"},
		{"refusal", ""},
		{"removed", ""},
		{"trust", ""},
		{"trust_garbage", "InvalidCA"},
		{"mismatch", peering.ReasonInvalidResource},
		{"bad_resource", peering.ReasonInvalidResource},
		{"no_payload", peering.ReasonUnknownMessage},
		{"future_payload", peering.ReasonUnknownMessage},
	} {
		name, want := seed.name, seed.want
		u, err := readSeed(name)
		if err != nil {
			t.Fatal(err)
		}
		err = fx.r.HandleUpdate(context.Background(), fuzzPeer, u)
		var ref *peering.RefusalError
		got := ""
		if errors.As(err, &ref) {
			got = ref.Reason
		} else if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("%s: answered %q (%v), want %q", name, got, err, want)
		}
	}
}
