package exporter

import (
	"fmt"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/link"
)

// TestPeriodicPassesShareOneKeyListing: the resync's passes over many links of one exported
// Elasticsearch read their keys from one listing instead of one query each, and answer exactly
// as live passes do; a pass queued by anything else lists live; a key written through the
// client ends the snapshot's use for the window (no second listing in it); the next window
// takes a new one.
func TestPeriodicPassesShareOneKeyListing(t *testing.T) {
	const links = 12
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	var ids []link.ID
	for i := range links {
		id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: fmt.Sprintf("west-logs-%d", i)}
		f.importLink(t, "east", id)
		ids = append(ids, id)
	}
	sent := map[link.ID]string{}
	for _, id := range ids {
		sent[id] = f.credentials("east", id).GetApiKeyId()
		f.e.trig.Take(item{kind: "link", peer: "east", link: id}) // the import's own trigger, taken by its pass
	}
	queries := func() int {
		return f.calls.Total("POST /_security/_query/api_key") + f.calls.Total("GET /_security/_query/api_key")
	}
	writes := func() int {
		return f.calls.Total("POST /_security/cross_cluster") + f.calls.Total("PUT /_security") + f.calls.Total("DELETE")
	}
	run := func(id link.ID, why string) {
		t.Helper()
		it := item{kind: "link", peer: "east", link: id}
		f.e.trig.Note(it, why)
		f.e.process(t.Context(), it)
		if got := f.credentials("east", id).GetApiKeyId(); got != sent[id] {
			t.Fatalf("%s pass of %s sent key %s, want %s again", why, id.Alias, got, sent[id])
		}
	}
	round := func(why string) (listed int) {
		t.Helper()
		q, w := queries(), writes()
		for _, id := range ids {
			run(id, why)
		}
		if n := writes() - w; n != 0 {
			t.Fatalf("a %s round with nothing changed made %d key writes", why, n)
		}
		return queries() - q
	}

	for _, id := range ids { // as after a pass that scheduled its next one (a key's rotation)
		f.e.trig.Note(item{kind: "link", peer: "east", link: id}, trigRequeue)
	}
	if n := round(trigResync); n != 1 {
		t.Errorf("a resync round over %d links listed keys %d times, want once", links, n)
	}
	if n := round(trigResync); n != links {
		t.Errorf("a second resync round in the same window listed keys %d times, want %d (each link served once)", n, links)
	}
	if n := round(trigStatus); n != links {
		t.Errorf("a round queued by link statuses listed keys %d times, want %d (live)", n, links)
	}

	f.offset.Add(int64(time.Minute)) // a new window
	q := queries()
	run(ids[0], trigResync)
	other := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs-new"}
	f.importLink(t, "east", other) // a key written through the client
	sent[other] = f.credentials("east", other).GetApiKeyId()
	for _, id := range ids[1:] {
		run(id, trigResync)
	}
	if n := queries() - q; n != 1+1+links-1 {
		t.Errorf("after a key write in the window: %d listings, want the snapshot, the new link's own and one per remaining link (%d)", n, 1+1+links-1)
	}
}

func TestPeriodic(t *testing.T) {
	for why, want := range map[string]bool{
		"resync": true, "requeue,resync": true, "requeue": false, "": false,
		"import,resync": false, "link-status,requeue,resync": false, "resync,retry": false,
	} {
		if got := periodic(why); got != want {
			t.Errorf("periodic(%q) = %v, want %v", why, got, want)
		}
	}
}

// TestStatusPassesReadTheKeysTheLastPassLeft: the passes a link's statuses queue while it
// connects read the keys the link's last pass left instead of listing them again, and answer as
// live passes do; a pass queued by anything else lists live, a periodic pass keeps nothing, and
// kept keys serve only within the window.
func TestStatusPassesReadTheKeysTheLastPassLeft(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
	queries := func() int {
		return f.calls.Total("POST /_security/_query/api_key") + f.calls.Total("GET /_security/_query/api_key")
	}
	q := queries()
	f.importLink(t, "east", id)
	if n := queries() - q; n != 1 {
		t.Fatalf("the import's pass listed keys %d times, want 1", n)
	}
	sent := f.credentials("east", id).GetApiKeyId()
	f.e.trig.Take(item{kind: "link", peer: "east", link: id})
	run := func(why string) (listed int) {
		t.Helper()
		q := queries()
		it := item{kind: "link", peer: "east", link: id}
		f.e.trig.Note(it, why)
		f.e.process(t.Context(), it)
		if got := f.credentials("east", id).GetApiKeyId(); got != sent {
			t.Fatalf("%s pass sent key %s, want %s again", why, got, sent)
		}
		return queries() - q
	}
	for _, tc := range []struct {
		name    string
		why     string
		advance time.Duration
		want    int
	}{
		{"status after the import", trigStatus, 0, 0},
		{"another status", trigStatus + "," + trigRequeue, 0, 0},
		{"import", trigImport, 0, 1},
		{"status after the import again", trigStatus, 0, 0},
		{"status past the window", trigStatus, time.Minute, 1},
		{"status within the new window", trigStatus, 0, 0},
		{"periodic (new window: snapshot)", trigResync, time.Minute, 1},
		{"status after a periodic pass", trigStatus, 0, 1},
	} {
		f.offset.Add(int64(tc.advance))
		if got := run(tc.why); got != tc.want {
			t.Errorf("%s: listed keys %d times, want %d", tc.name, got, tc.want)
		}
	}
}

func TestStatusOnly(t *testing.T) {
	for why, want := range map[string]bool{
		"link-status": true, "link-status,requeue": true, "link-status,requeue,resync": true,
		"import,link-status": false, "resync": false, "": false, "link-status,retry": false,
	} {
		if got := statusOnly(why); got != want {
			t.Errorf("statusOnly(%q) = %v, want %v", why, got, want)
		}
	}
}
