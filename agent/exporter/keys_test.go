package exporter

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakees"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// esimClients serves one esim node for every target.
type esimClients struct{ c *elastic.Client }

func (e esimClients) Client(context.Context, elastic.Target) (*elastic.Client, error) {
	return e.c, nil
}

func newKeyExporter(t *testing.T) (*Exporter, *elastic.Client) {
	t.Helper()
	node, err := esim.NewNode(esim.Config{Version: "9.3.2", ClusterName: "logs", NodeName: "logs-0"})
	if err != nil {
		t.Fatal(err)
	}
	c := fakees.Serve(t, node, nil)
	e := newHandlerExporter()
	e.cfg = Config{Deps: halves.Deps{Environment: "west", Elastic: esimClients{c}, Now: time.Now}}
	e.encoded = map[string]elastic.Secret{}
	e.log = hclog.NewNullLogger()
	return e, c
}

// TestKeyLifetimeChange: a link's live key whose lifetime no longer fits the export (a key that
// never expires, as release 0.1.0 made them by default, under an export that now gets the
// 90-day default; or an expiring key once the export sets neverExpire) is replaced by one that
// fits, make-before-break: the old key stays until the peer reports the new one connected.
func TestKeyLifetimeChange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		old       time.Duration // lifetime of the live key (0: never expires)
		apiKey    *v1alpha1.APIKeySettings
		wantLife  time.Duration
		wantFresh bool // a new key is made
	}{
		{name: "0.1.0's never-expiring key under the default", old: 0, apiKey: nil, wantLife: v1alpha1.DefaultKeyLifetime, wantFresh: true},
		{name: "expiring key, neverExpire asked", old: time.Hour, apiKey: &v1alpha1.APIKeySettings{NeverExpire: true}, wantLife: 0, wantFresh: true},
		{name: "never-expiring key, neverExpire asked", old: 0, apiKey: &v1alpha1.APIKeySettings{NeverExpire: true}, wantFresh: false},
		{name: "expiring key under the default, not due", old: v1alpha1.DefaultKeyLifetime, apiKey: nil, wantFresh: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e, c := newKeyExporter(t)
			id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
			exp := &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs"},
				Spec: v1alpha1.ClusterExportSpec{Peers: []string{"east"}, APIKey: tc.apiKey,
					Access: &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}}}}
			access := toAccess(exp.Spec.Access)
			old, err := c.CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{Name: link.KeyName("east", id), Access: access,
				Expiration: tc.old, Metadata: e.metadata("east", id, exp, elastic.AccessHash(access)).asMap()})
			if err != nil {
				t.Fatal(err)
			}
			e.encoded[old.ID] = old.Encoded
			st := &linkState{}
			status := &peerv1.LinkStatus{Link: id.Proto(), AppliedApiKeyId: old.ID, WrittenApiKeyId: old.ID, Connected: true}
			target := elastic.Target{Namespace: "data", Name: "logs"}
			key, _, err := e.ensureKey(ctx, "east", id, exp, target, status, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			if fresh := key.id != old.ID; fresh != tc.wantFresh {
				t.Fatalf("new key made: %v, want %v", fresh, tc.wantFresh)
			}
			if !tc.wantFresh {
				return
			}
			if life := key.expires.Sub(key.created).Round(time.Minute); (tc.wantLife == 0) != key.expires.IsZero() || (tc.wantLife != 0 && life != tc.wantLife) {
				t.Errorf("new key lifetime %s (expires %v), want %s", life, key.expires, tc.wantLife)
			}
			live, err := c.ListKeys(ctx, elastic.KeyQuery{Metadata: e.linkQuery("east", id), ActiveOnly: true})
			if err != nil || len(live) != 2 {
				t.Fatalf("before the peer connects with the new key: %d live keys (%v), want the old one kept", len(live), err)
			}
			status = &peerv1.LinkStatus{Link: id.Proto(), AppliedApiKeyId: key.id, WrittenApiKeyId: key.id, Connected: true}
			if _, _, err := e.ensureKey(ctx, "east", id, exp, target, status, st, nil); err != nil {
				t.Fatal(err)
			}
			live, err = c.ListKeys(ctx, elastic.KeyQuery{Metadata: e.linkQuery("east", id), ActiveOnly: true})
			if err != nil || len(live) != 1 || live[0].ID != key.id {
				t.Fatalf("after the peer connected with the new key: live keys %v (%v), want only %s", live, err, key.id)
			}
		})
	}
}

// userClients authenticates as one user of an esim node, which a test can switch.
type userClients struct {
	srv  *httptest.Server
	user string
}

func (u *userClients) Client(context.Context, elastic.Target) (*elastic.Client, error) {
	return elastic.NewClient(elastic.ClientConfig{URL: u.srv.URL, Username: u.user, Password: "test-password", Transport: u.srv.Client().Transport})
}

func keysFixture(t *testing.T) (*Exporter, *userClients, *esim.Node) {
	t.Helper()
	node, err := esim.NewNode(esim.Config{Version: "9.1.0", ClusterName: "logs", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	node.SetUser("elastic", "test-password")
	node.SetUser("ecklink-agent", "test-password")
	srv := httptest.NewServer(node.Handler())
	t.Cleanup(srv.Close)
	clients := &userClients{srv: srv, user: "elastic"}
	e := &Exporter{cfg: Config{Deps: halves.Deps{Environment: "west", Elastic: clients, Now: time.Now}}, log: hclog.NewNullLogger(), encoded: map[string]elastic.Secret{}}
	return e, clients, node
}

func testExport(index string) *v1alpha1.ClusterExport {
	return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "logs"},
		Spec: v1alpha1.ClusterExportSpec{
			ElasticsearchRef: v1alpha1.ElasticsearchReference{Name: "logs"},
			Access:           &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{index}}}},
			APIKey:           &v1alpha1.APIKeySettings{Expiration: &metav1.Duration{Duration: 24 * time.Hour}},
		}}
}

func active(node *esim.Node) map[string]string {
	out := map[string]string{}
	for _, k := range node.APIKeys() {
		if !k.Invalidated {
			out[k.ID] = k.Username
		}
	}
	return out
}

// Keys that another user made (elastic, in a 0.1.0 install) cannot be updated by the agent's
// user: they are replaced make-before-break (new key by the agent's user, the peer applies it and
// connects, then the old one goes), never updated.
func TestKeysOfAnotherUserAreReplacedMakeBeforeBreak(t *testing.T) {
	e, clients, node := keysFixture(t)
	ctx := context.Background()
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	target := elastic.Target{Namespace: "data", Name: "logs"}
	ensure := func(status *peerv1.LinkStatus, exp *v1alpha1.ClusterExport) chosenKey {
		t.Helper()
		choice, _, err := e.ensureKey(ctx, "east", id, exp, target, status, &linkState{}, nil)
		if err != nil {
			t.Fatalf("ensureKey: %v", err)
		}
		return choice
	}
	old := ensure(nil, testExport("logs-*")) // made by elastic, as 0.1.0 did
	if got := active(node); len(got) != 1 || got[old.id] != "elastic" {
		t.Fatalf("before the upgrade: %v", got)
	}

	clients.user = "ecklink-agent"
	connectedWith := func(key string) *peerv1.LinkStatus {
		return &peerv1.LinkStatus{AppliedApiKeyId: key, WrittenApiKeyId: key, Connected: true}
	}
	replacement := ensure(connectedWith(old.id), testExport("logs-*"))
	if replacement.id == old.id || replacement.encoded == "" {
		t.Fatalf("no replacement made: %+v", replacement)
	}
	if got := active(node); len(got) != 2 || got[old.id] != "elastic" || got[replacement.id] != "ecklink-agent" {
		t.Fatalf("make: both keys must be live, the new one the agent user's: %v", got)
	}
	if again := ensure(connectedWith(old.id), testExport("logs-*")); again.id != replacement.id || len(active(node)) != 2 {
		t.Fatalf("while the peer still uses the old key: chose %s, live %v", again.id, active(node))
	}
	ensure(connectedWith(replacement.id), testExport("logs-*"))
	if got := active(node); len(got) != 1 || got[replacement.id] != "ecklink-agent" {
		t.Fatalf("break: only the agent user's key may stay: %v", got)
	}
	for _, k := range node.APIKeys() {
		if k.ID == old.id && metaAccess(k) != "logs-*" {
			t.Errorf("the old key was updated (access %q): the agent's user may not", metaAccess(k))
		}
	}
}

// An access change cannot reach a key of another user in place: its replacement gets the new
// access and the old key goes at once, not after the peer reconnects.
func TestStaleKeyOfAnotherUserGoesAtOnce(t *testing.T) {
	e, clients, node := keysFixture(t)
	ctx := context.Background()
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	target := elastic.Target{Namespace: "data", Name: "logs"}
	old, _, err := e.ensureKey(ctx, "east", id, testExport("logs-*"), target, nil, &linkState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clients.user = "ecklink-agent"
	status := &peerv1.LinkStatus{AppliedApiKeyId: old.id, WrittenApiKeyId: old.id, Connected: true}
	replacement, _, err := e.ensureKey(ctx, "east", id, testExport("audit-*"), target, status, &linkState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := active(node)
	if len(got) != 1 || got[replacement.id] != "ecklink-agent" {
		t.Fatalf("live keys %v, want only the replacement", got)
	}
	k, _ := node.APIKey(replacement.id)
	if metaAccess(k) != "audit-*" {
		t.Errorf("replacement access = %q", metaAccess(k))
	}
}

func metaAccess(k esim.APIKeyInfo) string {
	if k.Access == nil || len(k.Access.Search) == 0 || len(k.Access.Search[0].Names) == 0 {
		return ""
	}
	return k.Access.Search[0].Names[0]
}

// TestKeyMetadataFollowsTheExport: a change that touches only a key's metadata (the link now
// served by another export with the same access) reaches the live key in place, same id; a key
// whose metadata and access already match is left alone.
func TestKeyMetadataFollowsTheExport(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keyExport  string // export named in the live key's metadata
		wantUpdate bool
	}{
		{name: "another export, same access", keyExport: "old", wantUpdate: true},
		{name: "same export, same access", keyExport: "logs", wantUpdate: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e, c := newKeyExporter(t)
			id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
			exp := func(name string) *v1alpha1.ClusterExport {
				return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: name},
					Spec: v1alpha1.ClusterExportSpec{Peers: []string{"east"},
						Access: &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}}}}
			}
			access := toAccess(exp("logs").Spec.Access)
			old, err := c.CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{Name: link.KeyName("east", id), Access: access,
				Expiration: v1alpha1.DefaultKeyLifetime, Metadata: e.metadata("east", id, exp(tc.keyExport), elastic.AccessHash(access)).asMap()})
			if err != nil {
				t.Fatal(err)
			}
			e.encoded[old.ID] = old.Encoded
			before, err := c.GetKey(ctx, old.ID)
			if err != nil {
				t.Fatal(err)
			}
			status := &peerv1.LinkStatus{Link: id.Proto(), AppliedApiKeyId: old.ID, WrittenApiKeyId: old.ID, Connected: true}
			key, _, err := e.ensureKey(ctx, "east", id, exp("logs"), elastic.Target{Namespace: "data", Name: "logs"}, status, &linkState{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if key.id != old.ID {
				t.Fatalf("a new key %s was made; a metadata change goes in place", key.id)
			}
			after, err := c.GetKey(ctx, old.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := parseKeyMetadata(after.Metadata).Export; got != "data/logs" {
				t.Errorf("key metadata export = %q, want data/logs", got)
			}
			if updated := parseKeyMetadata(before.Metadata).Export != parseKeyMetadata(after.Metadata).Export; updated != tc.wantUpdate {
				t.Errorf("metadata updated: %v, want %v", updated, tc.wantUpdate)
			}
		})
	}
}
