package exporter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// TestRemovedBeforeHeld: after a restart the peer resends only the latest state of each
// resource, so a link removed meanwhile arrives as a removal this process never saw the import
// of. The keys the previous process made for it are found by their metadata and invalidated at
// once, and only those: not another link's, not those of a link imported again meanwhile, and
// a removal of a link no export serves costs no Elasticsearch call.
func TestRemovedBeforeHeld(t *testing.T) {
	removed, other := testLink(1), testLink(2)
	tests := []struct {
		name string
		// between runs after the removal, before the queued item is processed.
		between     func(t *testing.T, e *Exporter)
		peer        string // who removes the link ("east": served by ns/logs)
		wantLookup  bool
		wantRemoved bool // the removed link's keys invalidated
	}{
		{name: "removed before held: its keys go", peer: "east", wantLookup: true, wantRemoved: true},
		{name: "imported again before the lookup: its keys stay", peer: "east", wantLookup: true,
			between: func(t *testing.T, e *Exporter) {
				if err := e.OnImport("east", &peerv1.ImportRequest{Link: removed.Proto(), ExportNamespace: "ns", ExportName: "logs"}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "a link no export serves: no lookup", peer: "north"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			keys, clients, node := keysFixture(t)
			e := newHandlerExporter()
			e.cfg.Elastic, e.encoded = clients, keys.encoded
			// The previous process made a key for each link (and two for the removed one).
			target := elastic.Target{Namespace: "ns", Name: "logs"}
			made := map[link.ID][]string{}
			for _, id := range []link.ID{removed, removed, other} {
				k, _, err := keys.ensureKey(ctx, "east", id, testExport("logs-*"), target, nil, &linkState{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				made[id] = append(made[id], k.id)
			}
			before := len(active(node))

			e.OnImportRemoved(tt.peer, removed)
			kinds := map[string]bool{}
			var items []item
			for e.queue.Len() > 0 {
				it, _ := e.queue.Get()
				kinds[it.kind] = true
				items = append(items, it)
				e.queue.Done(it)
			}
			if kinds["gone"] != tt.wantLookup {
				t.Fatalf("queued %v: lookup of the removed link's keys = %v, want %v", kinds, kinds["gone"], tt.wantLookup)
			}
			if !tt.wantLookup && !kinds["gc"] {
				t.Errorf("queued %v: want a sweep to cover it", kinds)
			}
			if tt.between != nil {
				tt.between(t, e)
			}
			for _, it := range items {
				if it.kind != "gone" {
					continue
				}
				if err := e.invalidateGone(ctx, it.peer); err != nil {
					t.Fatalf("invalidateGone: %v", err)
				}
			}
			live := active(node)
			for _, id := range made[removed] {
				if _, ok := live[id]; ok == tt.wantRemoved {
					t.Errorf("key %s of the removed link live = %v, want %v", id, ok, !tt.wantRemoved)
				}
			}
			for _, id := range made[other] {
				if _, ok := live[id]; !ok {
					t.Errorf("key %s of another link was invalidated", id)
				}
			}
			if !tt.wantRemoved && len(live) != before {
				t.Errorf("%d live keys, want the %d there were", len(live), before)
			}
			if e.gone[tt.peer][removed] {
				t.Error("the removal is still pending after its lookup")
			}
		})
	}
}

// TestRemovalsCostOneListingPerPass: a peer's removals, however many, are served by one pass
// with one listing of its keys per exported Elasticsearch, not one Elasticsearch call per link.
func TestRemovalsCostOneListingPerPass(t *testing.T) {
	ctx := context.Background()
	node, err := esim.NewNode(esim.Config{Version: "9.1.0", ClusterName: "logs", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	node.SetUser("ecklink-agent", "test-password")
	var queries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_security/_query/api_key" {
			queries.Add(1)
		}
		node.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	clients := &userClients{srv: srv, user: "ecklink-agent"}
	maker := &Exporter{cfg: Config{Deps: halves.Deps{Environment: "west", Elastic: clients, Now: time.Now}}, log: hclog.NewNullLogger(), encoded: map[string]elastic.Secret{}}
	target := elastic.Target{Namespace: "ns", Name: "logs"}
	var made []string
	for i := range 5 {
		k, _, err := maker.ensureKey(ctx, "east", testLink(i), testExport("logs-*"), target, nil, &linkState{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, k.id)
	}

	e := newHandlerExporter()
	e.cfg.Elastic = clients
	for i := range 200 {
		e.OnImportRemoved("east", testLink(i))
	}
	if n := e.queue.Len(); n != 1 {
		t.Fatalf("%d items queued for 200 removals, want 1", n)
	}
	it, _ := e.queue.Get()
	queries.Store(0)
	if err := e.invalidateGone(ctx, it.peer); err != nil {
		t.Fatal(err)
	}
	e.queue.Done(it)
	if n := queries.Load(); n != 1 {
		t.Errorf("%d key listings for 200 removals, want 1", n)
	}
	live := active(node)
	for _, id := range made {
		if _, ok := live[id]; ok {
			t.Errorf("key %s of a removed link is still live", id)
		}
	}
	if len(e.gone["east"]) != 0 {
		t.Errorf("%d removals still pending", len(e.gone["east"]))
	}
}

// failingFor fails for one target and serves the others.
type failingFor struct {
	halves.Clients
	broken elastic.Target
}

func (f *failingFor) Client(ctx context.Context, t elastic.Target) (*elastic.Client, error) {
	if t == f.broken {
		return nil, errors.New("connection refused")
	}
	return f.Clients.Client(ctx, t)
}

// TestRemovalsPastAnUnreachableCluster: an exported Elasticsearch that cannot be reached holds
// back only the removals it serves (retried), not the invalidation in the others.
func TestRemovalsPastAnUnreachableCluster(t *testing.T) {
	ctx := context.Background()
	keys, clients, node := keysFixture(t)
	target := elastic.Target{Namespace: "ns", Name: "logs"}
	k, _, err := keys.ensureKey(ctx, "east", testLink(1), testExport("logs-*"), target, nil, &linkState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newHandlerExporter()
	served := map[string][]string{"ns/logs": {"east"}, "ns/broken": {"east"}}
	e.grants = fakeGrants{peers: []string{"east"}, exports: served}
	broken := &failingFor{Clients: clients, broken: elastic.Target{Namespace: "ns", Name: "broken"}}
	e.cfg.Elastic = broken
	e.OnImportRemoved("east", testLink(1))

	err = e.invalidateGone(ctx, "east")
	if err == nil || !strings.Contains(err.Error(), "ns/broken") {
		t.Fatalf("invalidateGone = %v, want the unreachable cluster named", err)
	}
	if _, live := active(node)[k.id]; live {
		t.Error("the key in the reachable cluster is still live")
	}
	if !e.gone["east"][testLink(1)] {
		t.Fatal("the removal is no longer pending although one of its clusters was not searched")
	}
	broken.broken = elastic.Target{}
	if err := e.invalidateGone(ctx, "east"); err != nil {
		t.Fatal(err)
	}
	if len(e.gone["east"]) != 0 {
		t.Error("the removal is still pending after every cluster was searched")
	}
}
