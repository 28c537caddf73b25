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
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

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
	e := &Exporter{cfg: Config{Environment: "west", Elastic: clients, Now: time.Now}, log: hclog.NewNullLogger(), encoded: map[string]elastic.Secret{}}
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
