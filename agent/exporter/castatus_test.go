package exporter

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

var (
	fpOld = strings.Repeat("a", 64)
	fpNew = strings.Repeat("b", 64)
)

// TestCAStatus: one CAStatus stands for the CA part of the LinkStatus of every link of its group
// (one consuming Elasticsearch, one shared bundle), and only of those; the newer of a CAStatus
// and a LinkStatus tells which CAs a link applied, whatever order they arrive in; what a peer
// sends is bounded and refused with a named reason.
func TestCAStatus(t *testing.T) {
	base := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(s int) *timestamppb.Timestamp { return timestamppb.New(base.Add(time.Duration(s) * time.Second)) }
	ref := link.ExportCAID("ns", "logs")
	other := link.ExportCAID("ns", "metrics")
	group := link.CAGroup{ExportCA: ref, Namespace: "ns", Elasticsearch: "local"}
	// setup holds links 1-3 of east: 1 and 2 name the bundle ref, 3 another bundle; link 4 is of
	// another consuming Elasticsearch. Each reported fpOld at t=0 and was sent fpNew.
	setup := func() *Exporter {
		e := newHandlerExporter()
		e.links["east"] = map[link.ID]*linkState{}
		for i, caRef := range map[int]string{1: ref, 2: ref, 3: other, 4: ref} {
			id := testLink(i)
			if i == 4 {
				id.Elasticsearch = "elsewhere"
			}
			e.links["east"][id] = &linkState{caRef: caRef, caSent: map[string]time.Time{fpNew: base},
				status: &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{fpOld}, Observed: at(0), Connected: true}}
		}
		return e
	}
	applied := func(e *Exporter, i int) []string {
		id := testLink(i)
		if i == 4 {
			id.Elasticsearch = "elsewhere"
		}
		return e.links["east"][id].status.GetAppliedCaFingerprints()
	}
	both := []string{fpOld, fpNew}

	tests := []struct {
		name    string
		run     func(e *Exporter) error
		want    map[int][]string // applied CAs per link afterwards
		wantErr string           // a refusal naming this
	}{
		{
			name: "applies to the links of its group only",
			run: func(e *Exporter) error {
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)})
			},
			want: map[int][]string{1: both, 2: both, 3: {fpOld}, 4: {fpOld}},
		},
		{
			name: "an older link status does not undo it",
			run: func(e *Exporter) error {
				if err := e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)}); err != nil {
					return err
				}
				// resent after a reconnect: observed before the CAStatus
				return e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(1).Proto(), AppliedCaFingerprints: []string{fpOld}, Observed: at(1), Connected: true})
			},
			want: map[int][]string{1: both, 2: both},
		},
		{
			name: "a newer link status wins",
			run: func(e *Exporter) error {
				if err := e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)}); err != nil {
					return err
				}
				return e.OnLinkStatus("east", &peerv1.LinkStatus{Link: testLink(1).Proto(), AppliedCaFingerprints: []string{fpNew}, Observed: at(9), Connected: true})
			},
			want: map[int][]string{1: {fpNew}, 2: both},
		},
		{
			name: "an older CAStatus after a newer one is ignored",
			run: func(e *Exporter) error {
				if err := e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)}); err != nil {
					return err
				}
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: []string{fpOld}, Observed: at(3)})
			},
			want: map[int][]string{1: both, 2: both},
		},
		{
			name: "a CAStatus older than the links' statuses changes nothing",
			run: func(e *Exporter) error {
				for _, i := range []int{1, 2} {
					e.links["east"][testLink(i)].status.Observed = at(10)
				}
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)})
			},
			want: map[int][]string{1: {fpOld}, 2: {fpOld}},
		},
		{
			name: "observed is required",
			run: func(e *Exporter) error {
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both})
			},
			want:    map[int][]string{1: {fpOld}},
			wantErr: "observed is missing",
		},
		{
			name: "a malformed fingerprint",
			run: func(e *Exporter) error {
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: []string{"ZZ"}, Observed: at(5)})
			},
			want:    map[int][]string{1: {fpOld}},
			wantErr: "applied_ca_fingerprints entry",
		},
		{
			name: "too many fingerprints",
			run: func(e *Exporter) error {
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: slices.Repeat([]string{fpNew}, link.MaxFingerprints+1), Observed: at(5)})
			},
			want:    map[int][]string{1: {fpOld}},
			wantErr: "at most 32 allowed",
		},
		{
			name: "more groups than links a peer may hold",
			run: func(e *Exporter) error {
				e.cfg.LinksPerPeer = 2
				for _, es := range []string{"a", "b"} {
					if err := e.OnCAStatus("east", link.CAGroup{ExportCA: ref, Namespace: "ns", Elasticsearch: es}, &peerv1.CAStatus{Observed: at(5)}); err != nil {
						return err
					}
				}
				return e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: both, Observed: at(5)})
			},
			want:    map[int][]string{1: {fpOld}},
			wantErr: "limits.linksPerPeer",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup()
			err := tc.run(e)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != "" {
				var ref *peering.RefusalError
				if !errors.As(err, &ref) || ref.Reason != ReasonInvalidCAStatus || !strings.Contains(ref.Message, tc.wantErr) {
					t.Fatalf("err = %v, want a %s refusal naming %q", err, ReasonInvalidCAStatus, tc.wantErr)
				}
			}
			for i, want := range tc.want {
				if got := applied(e, i); !slices.Equal(got, want) {
					t.Errorf("link %d applied %v, want %v", i, got, want)
				}
			}
			// The propagation of fpNew is observed once, on the links that applied it.
			for i, want := range tc.want {
				id := testLink(i)
				if i == 4 {
					id.Elasticsearch = "elsewhere"
				}
				if observed := e.links["east"][id].caSent[fpNew].IsZero(); observed != slices.Contains(want, fpNew) {
					t.Errorf("link %d: propagation of the new CA observed %v, want %v", i, observed, !observed)
				}
			}
		})
	}
}

// TestCAStatusHeldForLaterLinks: a CAStatus of a group whose links have no LinkStatus yet (the
// stream resends castatus/ before status/ after a restart) is kept and merged into each link's
// first LinkStatus observed before it; a removal forgets it.
func TestCAStatusHeldForLaterLinks(t *testing.T) {
	base := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ref := link.ExportCAID("ns", "logs")
	group := link.CAGroup{ExportCA: ref, Namespace: "ns", Elasticsearch: "local"}
	e := newHandlerExporter()
	id := testLink(1)
	e.links["east"] = map[link.ID]*linkState{id: {caRef: ref}}
	if err := e.OnCAStatus("east", group, &peerv1.CAStatus{AppliedCaFingerprints: []string{fpOld, fpNew}, Observed: timestamppb.New(base.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	if e.links["east"][id].status != nil {
		t.Fatal("a CAStatus made up a LinkStatus for a link that has none")
	}
	if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{fpOld}, Observed: timestamppb.New(base), Connected: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.links["east"][id].status; !slices.Equal(got.GetAppliedCaFingerprints(), []string{fpOld, fpNew}) || !got.GetConnected() {
		t.Fatalf("status = %v, want the link's own status with the group's newer CAs", got)
	}
	e.OnCAStatusRemoved("east", group)
	if err := e.OnLinkStatus("east", &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{fpOld}, Observed: timestamppb.New(base.Add(time.Second)), Connected: true}); err != nil {
		t.Fatal(err)
	}
	if got := e.links["east"][id].status.GetAppliedCaFingerprints(); !slices.Equal(got, []string{fpOld}) {
		t.Fatalf("applied %v after the CAStatus was removed, want the link's own %v", got, []string{fpOld})
	}
	e.PeerGone("east")
	if len(e.caStatus["east"]) != 0 {
		t.Fatal("CA statuses of a peer whose peering ended are kept")
	}
}
