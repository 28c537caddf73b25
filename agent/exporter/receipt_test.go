package exporter

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// fakeGrants is an informer cache with Peers and ClusterExports ("ns/name" -> peers, and
// "ns/name" -> spec.grants).
type fakeGrants struct {
	peers   []string
	exports map[string][]string
	grants  map[string][]v1alpha1.ExportGrant
}

func (f fakeGrants) Peer(env string) (*v1alpha1.Peer, bool) {
	if !slices.Contains(f.peers, env) {
		return nil, false
	}
	return &v1alpha1.Peer{}, true
}

func (f fakeGrants) ClusterExport(ns, name string) (*v1alpha1.ClusterExport, bool) {
	peers, ok := f.exports[ns+"/"+name]
	grants, granted := f.grants[ns+"/"+name]
	if !ok && !granted {
		return nil, false
	}
	return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.ClusterExportSpec{Peers: peers, Grants: grants}}, true
}

func (f fakeGrants) ClusterExports() []*v1alpha1.ClusterExport {
	var out []*v1alpha1.ClusterExport
	for _, key := range slices.Sorted(maps.Keys(f.exports)) {
		ns, name, _ := strings.Cut(key, "/")
		exp, _ := f.ClusterExport(ns, name)
		exp.Spec.ElasticsearchRef.Name = name
		out = append(out, exp)
	}
	return out
}

// recordingOutbox keeps what the exporter publishes, like the peering layer's outbox.
type recordingOutbox struct {
	mu       sync.Mutex
	held     map[string]proto.Message // peer/resource -> payload
	removed  int
	resynced []string
}

func newRecordingOutbox() *recordingOutbox { return &recordingOutbox{held: map[string]proto.Message{}} }

func (o *recordingOutbox) Publish(peer, resource string, p proto.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.held[peer+"/"+resource] = p
	return nil
}

func (o *recordingOutbox) Remove(peer, resource string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.held[peer+"/"+resource]; ok {
		o.removed++
	}
	delete(o.held, peer+"/"+resource)
	return nil
}

func (o *recordingOutbox) Resync(peer string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resynced = append(o.resynced, peer)
}

func (o *recordingOutbox) refusal(peer string, id link.ID) *peerv1.Refusal {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, _ := o.held[peer+"/"+link.Resource(link.KindCredentials, id)].(*peerv1.Refusal)
	return r
}

func importOf(id link.ID, export string) *peerv1.ImportRequest {
	ns, name, _ := strings.Cut(export, "/")
	return &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: ns, ExportName: name, ElasticsearchVersion: "9.3.2"}
}

func nackReason(err error) string {
	if ref, ok := err.(*peering.RefusalError); ok {
		return ref.Reason
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

// sendMany has east ask export for n distinct links.
func sendMany(n int, export string) func(send func(string, link.ID, string) string) {
	return func(send func(string, link.ID, string) string) {
		for i := range n {
			send("east", testLink(i), export)
		}
	}
}

// TestImportReceipt: an import request for a link not held yet is checked on receipt against
// the grants in the informer cache and the caps. Refused requests are not kept: a Nack naming
// the reason, and a small record plus one Refusal while the peer holds fewer than
// limits.linksPerPeer links; nothing at all beyond that.
func TestImportReceipt(t *testing.T) {
	tests := []struct {
		name        string
		perPeer     int
		perExport   int
		requests    func(send func(peer string, id link.ID, export string) string)
		wantReasons map[string]int // Nack reason ("" for accepted) -> count
		wantLinks   int            // links kept (granted)
		wantRefused int            // refused records
		wantErrText string         // in the last refusal sent
	}{
		{
			name: "granted request kept",
			requests: func(send func(string, link.ID, string) string) {
				send("east", testLink(1), "ns/logs")
			},
			wantReasons: map[string]int{"": 1}, wantLinks: 1,
		},
		{
			name: "export that does not name the peer, and a missing one: same answer",
			requests: func(send func(string, link.ID, string) string) {
				send("east", testLink(1), "ns/other")
				send("east", testLink(2), "ns/missing")
			},
			wantReasons: map[string]int{v1alpha1.ReasonPeerNotGranted: 2}, wantRefused: 2,
			wantErrText: "no ClusterExport ns/missing grants access to environment east",
		},
		{
			name: "spec.grants: the link's namespace and Elasticsearch, nothing else",
			requests: func(send func(string, link.ID, string) string) {
				send("east", testLink(1), "ns/narrow")                                                              // ns/local granted
				send("east", link.ID{Namespace: "ns", Elasticsearch: "etl", Alias: "west-etl"}, "ns/narrow")        // another Elasticsearch
				send("east", link.ID{Namespace: "other", Elasticsearch: "local", Alias: "west-other"}, "ns/narrow") // another namespace
				send("north", testLink(1), "ns/narrow")                                                             // another peer
				send("east", testLink(2), "ns/anyes")                                                               // any Elasticsearch of ns
			},
			wantReasons: map[string]int{"": 2, v1alpha1.ReasonPeerNotGranted: 3}, wantLinks: 2, wantRefused: 3,
		},
		{
			name: "unpaired environment",
			requests: func(send func(string, link.ID, string) string) {
				send("mallory", testLink(1), "ns/logs")
			},
			wantReasons: map[string]int{v1alpha1.ReasonPeerNotFound: 1}, wantRefused: 1,
		},
		{
			name:        "100,000 distinct ungranted links keep at most linksPerPeer records",
			perPeer:     50,
			requests:    sendMany(100000, "ns/other"),
			wantReasons: map[string]int{v1alpha1.ReasonPeerNotGranted: 100000}, wantRefused: 50,
		},
		{
			name:        "links per peer: granted beyond the cap refused, naming the setting",
			perPeer:     3,
			requests:    sendMany(4, "ns/logs"),
			wantReasons: map[string]int{"": 3, ReasonLinkLimitExceeded: 1}, wantLinks: 3,
		},
		{
			name:      "links per export, over all peers",
			perExport: 2,
			requests: func(send func(string, link.ID, string) string) {
				send("east", testLink(1), "ns/logs")
				send("north", testLink(1), "ns/logs")
				send("east", testLink(2), "ns/logs")
				send("east", testLink(1), "ns/logs") // held already: not counted again
			},
			wantReasons: map[string]int{"": 3, ReasonLinkLimitExceeded: 1}, wantLinks: 2, wantRefused: 1,
			wantErrText: "ClusterExport ns/logs already serves 2 links, the most limits.linksPerExport allows",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newHandlerExporter()
			defer e.queue.ShutDown()
			e.grants = fakeGrants{peers: []string{"east", "north"}, exports: map[string][]string{"ns/logs": {"east", "north"}, "ns/other": {"north"}},
				grants: map[string][]v1alpha1.ExportGrant{
					"ns/narrow": {{Peer: "east", Namespaces: []string{"ns"}, Elasticsearch: []string{"local"}}},
					"ns/anyes":  {{Peer: "east", Namespaces: []string{"ns"}}},
				}}
			if tc.perPeer > 0 {
				e.cfg.LinksPerPeer = tc.perPeer
			}
			if tc.perExport > 0 {
				e.cfg.LinksPerExport = tc.perExport
			}
			out := e.cfg.Outbox.(*recordingOutbox)
			got := map[string]int{}
			var last *peerv1.Refusal
			tc.requests(func(peer string, id link.ID, export string) string {
				r := nackReason(e.OnImport(peer, importOf(id, export)))
				got[r]++
				if ref := out.refusal(peer, id); ref != nil {
					last = ref
				}
				return r
			})
			if fmt.Sprint(got) != fmt.Sprint(tc.wantReasons) {
				t.Errorf("answers %v, want %v", got, tc.wantReasons)
			}
			links, refused := 0, 0
			for _, l := range e.links {
				links += len(l)
			}
			for _, r := range e.refused {
				refused += len(r)
			}
			if links != tc.wantLinks || refused != tc.wantRefused {
				t.Errorf("kept %d links and %d refused records, want %d and %d", links, refused, tc.wantLinks, tc.wantRefused)
			}
			if len(out.held) != tc.wantRefused {
				t.Errorf("%d Refusals sent, want one per refused record (%d)", len(out.held), tc.wantRefused)
			}
			if tc.wantErrText != "" && (last == nil || !strings.Contains(last.GetMessage(), tc.wantErrText)) {
				t.Errorf("last Refusal %v, want one saying %q", last, tc.wantErrText)
			}
		})
	}
}

// TestRefusedLinkLifecycle: a refused record goes with the peer's removal or inventory; when
// the export comes to grant the peer, the peer is asked (once per minResyncGap) to send its
// request again, which is then kept.
func TestRefusedLinkLifecycle(t *testing.T) {
	e := newHandlerExporter()
	defer e.queue.ShutDown()
	out := e.cfg.Outbox.(*recordingOutbox)
	now := time.Unix(1e9, 0)
	e.cfg.Now = func() time.Time { return now }
	for i := range 3 {
		if r := nackReason(e.OnImport("east", importOf(testLink(i), "ns/later"))); r != v1alpha1.ReasonPeerNotGranted {
			t.Fatalf("request %d answered %q, want PeerNotGranted", i, r)
		}
	}
	e.OnImportRemoved("east", testLink(0))
	e.OnInventory("east", []string{"import/" + testLink(1).String(), "import/never/seen/x"})
	if len(e.refused["east"]) != 1 || out.removed != 2 || out.refusal("east", testLink(1)) == nil {
		t.Fatalf("refused %v, %d Refusals withdrawn: want only link 1 left, 2 withdrawn", e.refused["east"], out.removed)
	}
	e.resyncRefused()
	if len(out.resynced) != 0 {
		t.Fatalf("resynced %v while nothing grants the peer", out.resynced)
	}
	e.grants = fakeGrants{peers: []string{"east"}, exports: map[string][]string{"ns/later": {"east"}}}
	e.resyncRefused()
	e.resyncRefused()
	if !slices.Equal(out.resynced, []string{"east"}) {
		t.Fatalf("resynced %v, want east once", out.resynced)
	}
	now = now.Add(minResyncGap)
	e.resyncRefused()
	if len(out.resynced) != 2 {
		t.Fatalf("resynced %v, want east again after minResyncGap", out.resynced)
	}
	// A peer that does not send the request again loses the record after maxResyncs.
	now = now.Add(minResyncGap)
	e.resyncRefused()
	if len(out.resynced) != 2 || len(e.refused["east"]) != 0 || out.refusal("east", testLink(1)) != nil {
		t.Fatalf("resynced %v, refused %v: want the record dropped after %d restarts", out.resynced, e.refused["east"], maxResyncs)
	}
	if r := nackReason(e.OnImport("east", importOf(testLink(1), "ns/later"))); r != "" {
		t.Fatalf("the resent request answered %q, want it kept", r)
	}
	if len(e.refused["east"]) != 0 || e.links["east"][testLink(1)] == nil {
		t.Fatal("the granted request did not replace the refused record")
	}
}

// TestReceiptBounds: peer strings are bounded on receipt, each refusal naming the field.
func TestReceiptBounds(t *testing.T) {
	long := strings.Repeat("x", 2048)
	fp := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"version too long", validateImport(&peerv1.ImportRequest{ExportNamespace: "ns", ExportName: "logs", ElasticsearchVersion: strings.Repeat("9", 33)}), "elasticsearch_version"},
		{"version with a newline", validateImport(&peerv1.ImportRequest{ExportNamespace: "ns", ExportName: "logs", ElasticsearchVersion: "9.3\n"}), "elasticsearch_version"},
		{"export name not a name", validateImport(&peerv1.ImportRequest{ExportNamespace: "ns", ExportName: "Logs/../x"}), "want namespace/name"},
		{"signing subject too long", validateImport(&peerv1.ImportRequest{ExportNamespace: "ns", ExportName: "logs", SigningSubject: long}), "signing_subject is 2048 bytes"},
		{"valid request", validateImport(&peerv1.ImportRequest{ExportNamespace: "ns", ExportName: "logs.v2", ElasticsearchVersion: "9.3.2-SNAPSHOT"}), ""},
		{"status message too long", validateLinkStatus(&peerv1.LinkStatus{Message: long}), "message is 2048 bytes"},
		{"too many fingerprints", validateLinkStatus(&peerv1.LinkStatus{AppliedCaFingerprints: slices.Repeat([]string{fp}, 33)}), "33 applied_ca_fingerprints"},
		{"fingerprint not hex", validateLinkStatus(&peerv1.LinkStatus{AppliedCaFingerprints: []string{long}}), "want 64 lower-case hex"},
		{"key id", validateLinkStatus(&peerv1.LinkStatus{AppliedApiKeyId: "a b"}), "applied_api_key_id"},
		{"valid status", validateLinkStatus(&peerv1.LinkStatus{AppliedApiKeyId: "k-1", AppliedCaFingerprints: []string{fp}, Message: "not connected"}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" && tc.err != nil || tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", tc.err, tc.want)
			}
			if tc.err != nil && len(tc.err.Error()) > 512 {
				t.Fatalf("error of %d bytes quotes the peer's text unclipped", len(tc.err.Error()))
			}
		})
	}
}

// TestExportLinksBounded: status.links holds at most maxStatusLinks links, shared out between
// peers, so a peer with many links cannot hide another's; linkCount says how many there are.
func TestExportLinksBounded(t *testing.T) {
	e := newHandlerExporter()
	defer e.queue.ShutDown()
	add := func(peer string, n int) {
		for i := range n {
			st := e.stateLocked(peer, testLink(i))
			st.req = importOf(testLink(i), "ns/logs")
			st.status = &peerv1.LinkStatus{Message: "bad\n\x1b[31m" + strings.Repeat("m", 1000)}
		}
	}
	add("aaa-mallory", 500)
	add("east", 3)
	links, total := e.exportLinks("ns", "logs")
	if total != 503 || len(links) != maxStatusLinks {
		t.Fatalf("%d links listed of %d, want %d of 503", len(links), total, maxStatusLinks)
	}
	east := 0
	for _, l := range links {
		if l.Peer == "east" {
			east++
		}
		if len(l.Message) > 259 || strings.ContainsAny(l.Message, "\n\x1b") {
			t.Fatalf("message %q not cleaned and clipped", l.Message)
		}
	}
	if east != 3 {
		t.Fatalf("%d of east's 3 links listed next to mallory's 500", east)
	}
	if !slices.IsSortedFunc(links, func(a, b v1alpha1.ExportLink) int {
		return strings.Compare(a.Peer+"/"+linkKey(a), b.Peer+"/"+linkKey(b))
	}) {
		t.Fatal("links not sorted")
	}
}
