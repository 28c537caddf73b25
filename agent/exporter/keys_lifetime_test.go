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
	node.SetUser("elastic", "test-password")
	srv := httptest.NewTLSServer(node.Handler())
	t.Cleanup(srv.Close)
	c, err := elastic.NewClient(elastic.ClientConfig{URL: srv.URL, Username: "elastic", Password: elastic.Secret("test-password"), Transport: srv.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	e := newHandlerExporter()
	e.cfg = Config{Environment: "west", Elastic: esimClients{c}, Now: time.Now}
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
