package exporter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/halves"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/signing"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func newHandlerExporter() *Exporter {
	return &Exporter{
		cfg:      Config{Deps: halves.Deps{Environment: "west", Now: time.Now, Recorder: kube.NewRecorderFor(&record.FakeRecorder{})}, LinksPerPeer: DefaultLinksPerPeer, LinksPerExport: DefaultLinksPerExport, Outbox: newRecordingOutbox()},
		log:      hclog.NewNullLogger(),
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[item]()),
		links:    map[string]map[link.ID]*linkState{},
		early:    map[string]map[link.ID]*peerv1.LinkStatus{},
		caStatus: map[string]map[link.CAGroup]*peerv1.CAStatus{},
		inventry: map[string]bool{},
		listed:   map[string]map[link.ID]bool{},
		refused:  map[string]map[link.ID]refusedLink{},
		resynced: map[string]time.Time{},
		// east is paired; ns/logs grants it.
		grants: fakeGrants{peers: []string{"east"}, exports: map[string][]string{"ns/logs": {"east"}}},
		gone:   map[string]map[link.ID]bool{},
	}
}

func testLink(i int) link.ID {
	return link.ID{Namespace: "ns", Elasticsearch: "local", Alias: fmt.Sprintf("west-%04d", i)}
}

// TestLinkStatusBeforeImport: a stream opening with many updates can deliver a link's status
// before its import request (rate-limited updates are resent later). The status is held and the
// import picks it up, instead of the status being refused and never sent again.
func TestLinkStatusBeforeImport(t *testing.T) {
	tests := []struct {
		name       string
		run        func(e *Exporter) error
		wantStatus bool
		wantHeld   int
		wantErr    string
	}{
		{
			name: "status then import",
			run: func(e *Exporter) error {
				if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(1).Proto(), Connected: true}); err != nil {
					return err
				}
				return e.OnImport("east", &peerv1.ImportRequest{Link: testLink(1).Proto(), ExportNamespace: "ns", ExportName: "logs"})
			},
			wantStatus: true,
		},
		{
			name: "status, then the import is listed as gone",
			run: func(e *Exporter) error {
				if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(1).Proto()}); err != nil {
					return err
				}
				e.OnInventory("east", nil)
				return nil
			},
		},
		{
			name: "held statuses are bounded",
			run: func(e *Exporter) error {
				for i := range maxEarlyStatuses + 1 {
					if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(i).Proto()}); err != nil {
						return err
					}
				}
				return nil
			},
			wantHeld: maxEarlyStatuses,
			wantErr:  "which the peer never imported",
		},
		{
			name: "peer gone drops held statuses",
			run: func(e *Exporter) error {
				if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(1).Proto()}); err != nil {
					return err
				}
				e.PeerGone("east")
				return nil
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newHandlerExporter()
			defer e.queue.ShutDown()
			err := tc.run(e)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			st := e.links["east"][testLink(1)]
			if got := st != nil && st.status != nil; got != tc.wantStatus {
				t.Errorf("link has status: %v, want %v", got, tc.wantStatus)
			}
			if got := len(e.early["east"]); got != tc.wantHeld {
				t.Errorf("%d statuses held, want %d", got, tc.wantHeld)
			}
		})
	}
}

// An import request's strong identity material is checked on receipt: a peer may only ask for
// its own Elasticsearch's signing subject, with a bundle of valid CA certificates.
func TestValidateSigning(t *testing.T) {
	now := time.Now()
	auth := newAuthority(t, "east", now)
	bundle := auth.TrustBundle(now)
	leaf, _, err := auth.Issue(signing.SubjectFor("east", "apps", "ccs"), now)
	if err != nil {
		t.Fatal(err)
	}
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	own := signing.SubjectFor("east", "apps", "ccs").String()
	for _, tc := range []struct {
		name    string
		bundle  []byte
		subject string
		want    string // a part of the error, "" for none
	}{
		{name: "none (consumer below 9.3)"},
		{name: "own subject", bundle: bundle, subject: own},
		{name: "bundle without subject", bundle: bundle, want: "must be set together"},
		{name: "another environment's subject", bundle: bundle, subject: signing.SubjectFor("north", "apps", "ccs").String(),
			want: `signing_subject "CN=ccs.apps.north,OU=ecklink-signing": want "CN=ccs.apps.east,OU=ecklink-signing"`},
		{name: "another Elasticsearch's subject", bundle: bundle, subject: signing.SubjectFor("east", "apps", "other").String(), want: "signing_subject"},
		{name: "garbage bundle", bundle: []byte("not pem"), subject: own, want: "signing_ca_bundle"},
		{name: "leaf instead of CA", bundle: leaf, subject: own, want: "signing_ca_bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateSigning("east", id, &peerv1.ImportRequest{SigningCaBundle: tc.bundle, SigningSubject: tc.subject}, time.Now)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("validateSigning = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSweepAfterRestart: after a restart the peer sends only the latest state of each resource,
// so a link removed meanwhile arrives as a removal this process never saw the import of. The
// removal and the inventory each queue a sweep, and the sweep keeps exactly the keys of links the
// inventory lists (their requests may still be on their way) or this agent holds.
func TestSweepAfterRestart(t *testing.T) {
	held, listedOnly, removed, neverListed := testLink(1), testLink(2), testLink(3), testLink(4)
	tests := []struct {
		name string
		run  func(e *Exporter)
		want map[link.ID]bool // mayImport per link
		gc   bool             // a sweep was queued
		gone bool             // a lookup of a removed link's keys was queued
	}{
		{
			name: "before the inventory everything may stay",
			run:  func(e *Exporter) {},
			want: map[link.ID]bool{held: true, listedOnly: true, removed: true, neverListed: true},
		},
		{
			name: "the inventory keeps what it lists or this agent holds",
			run: func(e *Exporter) {
				e.OnInventory("east", []string{link.Resource(link.KindImport, held), link.Resource(link.KindImport, listedOnly), link.Resource(link.KindImport, removed)})
			},
			want: map[link.ID]bool{held: true, listedOnly: true, removed: true, neverListed: false},
			gc:   true,
		},
		{
			name: "a removal of a link never seen in this process",
			run: func(e *Exporter) {
				e.OnInventory("east", []string{link.Resource(link.KindImport, held), link.Resource(link.KindImport, listedOnly), link.Resource(link.KindImport, removed)})
				drain(e)
				e.OnImportRemoved("east", removed)
			},
			want: map[link.ID]bool{held: true, listedOnly: true, removed: false, neverListed: false},
			// Its keys are looked up at once ("gone", TestRemovedBeforeHeld), not left to a sweep.
			gone: true,
		},
		{
			name: "a held link removed",
			run: func(e *Exporter) {
				e.OnInventory("east", []string{link.Resource(link.KindImport, held)})
				e.OnImportRemoved("east", held)
			},
			want: map[link.ID]bool{held: false, listedOnly: false, removed: false, neverListed: false},
			gc:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newHandlerExporter()
			if err := e.OnImport("east", &peerv1.ImportRequest{Link: held.Proto(), ExportNamespace: "ns", ExportName: "logs"}); err != nil {
				t.Fatal(err)
			}
			drain(e)
			tt.run(e)
			for id, want := range tt.want {
				if got := e.mayImport("east", id); got != want {
					t.Errorf("mayImport(%s) = %v, want %v", id, got, want)
				}
			}
			kinds := queuedKinds(e)
			if got := kinds["gc"]; got != tt.gc {
				t.Errorf("sweep queued = %v, want %v", got, tt.gc)
			}
			if got := kinds["gone"]; got != tt.gone {
				t.Errorf("removed link's keys looked up = %v, want %v", got, tt.gone)
			}
		})
	}
}

// drain empties the exporter's queue without processing.
func drain(e *Exporter) {
	for e.queue.Len() > 0 {
		it, _ := e.queue.Get()
		e.queue.Done(it)
		e.queue.Forget(it)
	}
}

// queuedKinds empties the queue and returns the kinds of item it held.
func queuedKinds(e *Exporter) map[string]bool {
	kinds := map[string]bool{}
	for e.queue.Len() > 0 {
		it, _ := e.queue.Get()
		kinds[it.kind] = true
		e.queue.Done(it)
	}
	return kinds
}
