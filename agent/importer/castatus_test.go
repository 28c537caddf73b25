package importer

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// countingOutbox counts the updates that go on the stream per resource kind: as the stream
// does (peering), a payload equal to the resource's last one sends nothing.
type countingOutbox struct {
	Outbox
	mu     sync.Mutex
	counts map[string]int
	last   map[string]proto.Message
}

func (o *countingOutbox) Publish(peer, resource string, p proto.Message) error {
	kind, _, _ := strings.Cut(resource, "/")
	o.mu.Lock()
	if o.last == nil {
		o.last = map[string]proto.Message{}
	}
	if prev, ok := o.last[resource]; !ok || !proto.Equal(prev, p) {
		o.counts[kind]++
		o.last[resource] = proto.Clone(p)
	}
	o.mu.Unlock()
	return o.Outbox.Publish(peer, resource, p)
}

func (o *countingOutbox) reset() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.counts
	o.counts = map[string]int{}
	return c
}

// TestCAStatusOnePerElasticsearch: the echo of a renewed shared CA is one CAStatus per consuming
// Elasticsearch to a peer that announced "ca-status", and a LinkStatus per link to one that did
// not; the links' own statuses follow without being sent, so the next full reconcile sends
// nothing for them either.
func TestCAStatusOnePerElasticsearch(t *testing.T) {
	const links = 5
	for _, tc := range []struct {
		name                     string
		caps                     []string
		wantCAStatus, wantStatus int
	}{
		{name: "peer reads CAStatus", caps: []string{peering.CapabilityExportCA, peering.CapabilityCAStatus}, wantCAStatus: 1},
		{name: "peer without ca-status", caps: []string{peering.CapabilityExportCA}, wantStatus: links},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rcs []*v1alpha1.RemoteCluster
			for i := range links {
				rcs = append(rcs, remoteCluster(fmt.Sprintf("l-%02d", i), v1alpha1.SecurityModelAPIKey))
			}
			f := newFixture(t, rcs...)
			f.im.cfg.Resync, f.im.cfg.Pending, f.im.cfg.SigningTick = time.Hour, time.Hour, time.Hour
			f.im.cfg.Recorder = kube.NewRecorderFor(record.NewFakeRecorder(1000))
			out := &countingOutbox{Outbox: f.outbox, counts: map[string]int{}}
			f.im.cfg.Outbox = out
			f.im.PeerConnected(fxPeer, tc.caps)
			ref := link.ExportCAID("data", "logs")
			if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: newTestCA(t, "ca-0")}); err != nil {
				t.Fatal(err)
			}
			var ids []link.ID
			for i, rc := range rcs {
				id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: rc.Spec.Alias}
				ids = append(ids, id)
				keyID := fmt.Sprintf("key-%d", i)
				c := &peerv1.Credentials{Link: id.Proto(), Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: keyID,
					ApiKeyEncoded: base64.StdEncoding.EncodeToString([]byte(keyID + ":secret")), CaRef: ref, ProxyAddress: "logs.west.example:9443"}
				if err := f.im.OnCredentials(fxPeer, 1, c); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); _ = f.im.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitCache(t, func() bool {
				for _, id := range ids {
					if f.outbox.get(link.Resource(link.KindStatus, id)) == nil {
						return false
					}
				}
				return true
			})
			f.waitQuiet(t)
			out.reset()

			next := newTestCA(t, "ca-1")
			certs, err := pemutil.ParseCertificates(next, pemutil.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			fp := pemutil.Fingerprint(certs[0])
			if err := f.im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: next}); err != nil {
				t.Fatal(err)
			}
			cm := wiring.CAConfigMapName(fxES)
			waitCache(t, func() bool {
				c, err := f.Kube.CoreV1().ConfigMaps(fxNS).Get(t.Context(), cm, metav1.GetOptions{})
				return err == nil && strings.Contains(c.Data["ca.crt"], strings.TrimSpace(string(next)))
			})
			f.waitQuiet(t)
			// A full reconcile afterwards sends nothing new: the links' statuses already hold the CA.
			f.im.enqueueAll(trigResync)
			f.waitQuiet(t)
			got := out.reset()
			if got[link.KindCAStatus] != tc.wantCAStatus || got[link.KindStatus] != tc.wantStatus {
				t.Fatalf("published %d CAStatus and %d LinkStatus for one CA renewal of %d links, want %d and %d",
					got[link.KindCAStatus], got[link.KindStatus], links, tc.wantCAStatus, tc.wantStatus)
			}
			g := link.CAGroup{ExportCA: ref, Namespace: fxNS, Elasticsearch: fxES}
			if tc.wantCAStatus > 0 {
				cs, _ := f.outbox.get(link.CAStatusResource(g)).(*peerv1.CAStatus)
				if !slices.Contains(cs.GetAppliedCaFingerprints(), fp) || cs.GetObserved() == nil {
					t.Fatalf("CAStatus = %v, want the new CA %s and a time", cs, fp[:16])
				}
				// A peer rolled back to a release without "ca-status" gets the links' statuses
				// with the new CA instead.
				f.im.PeerConnected(fxPeer, []string{peering.CapabilityExportCA})
				for _, id := range ids {
					ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
					if !slices.Contains(ls.GetAppliedCaFingerprints(), fp) {
						t.Fatalf("after the peer lost ca-status, status of %s = %v, want the new CA %s", id, ls, fp[:16])
					}
				}
				if f.outbox.get(link.CAStatusResource(g)) != nil {
					t.Fatal("CAStatus kept for a peer that no longer reads it")
				}
				f.im.PeerConnected(fxPeer, tc.caps)
				f.im.mu.Lock()
				f.im.caGroups[g] = caGroup{peer: fxPeer, fps: cs.GetAppliedCaFingerprints()}
				f.im.mu.Unlock()
				_ = f.outbox.Publish(fxPeer, link.CAStatusResource(g), cs)
				// Removing links withdraws the group's CAStatus with the last of them.
				f.im.mu.Lock()
				for _, id := range ids[1:] {
					delete(f.im.answers, id)
				}
				f.im.mu.Unlock()
				f.im.releaseCAStatus(ids[1])
				if f.outbox.get(link.CAStatusResource(g)) == nil {
					t.Fatal("CAStatus withdrawn while a link of its group is left")
				}
				f.im.mu.Lock()
				delete(f.im.answers, ids[0])
				f.im.mu.Unlock()
				f.im.releaseCAStatus(ids[0])
				if f.outbox.get(link.CAStatusResource(g)) != nil {
					t.Fatal("CAStatus kept after the last link of its group was removed")
				}
				return
			}
			for _, id := range ids {
				ls, _ := f.outbox.get(link.Resource(link.KindStatus, id)).(*peerv1.LinkStatus)
				if !slices.Contains(ls.GetAppliedCaFingerprints(), fp) {
					t.Fatalf("status of %s = %v, want the new CA %s", id, ls, fp[:16])
				}
			}
		})
	}
}

// TestCoveredByCAStatus: a link's LinkStatus is held back only when the CAs are all that changed
// and its group's CAStatus, sent to the same peer, already reports exactly those CAs.
func TestCoveredByCAStatus(t *testing.T) {
	id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}
	ref := link.ExportCAID("data", "logs")
	g := link.CAGroup{ExportCA: ref, Namespace: fxNS, Elasticsearch: fxES}
	oldFP, newFP := strings.Repeat("a", 64), strings.Repeat("b", 64)
	sent := &peerv1.LinkStatus{Link: id.Proto(), AppliedCaFingerprints: []string{oldFP}, Connected: true, WrittenApiKeyId: "k1"}
	next := func(edit func(*peerv1.LinkStatus)) *peerv1.LinkStatus {
		ls := proto.Clone(sent).(*peerv1.LinkStatus)
		ls.AppliedCaFingerprints = []string{oldFP, newFP}
		if edit != nil {
			edit(ls)
		}
		return ls
	}
	for _, tc := range []struct {
		name   string
		caRef  string
		group  *caGroup
		prev   *peerv1.LinkStatus
		next   *peerv1.LinkStatus
		peer   string
		covers bool
	}{
		{name: "only the CAs changed, reported by the group", caRef: ref, group: &caGroup{peer: fxPeer, fps: []string{oldFP, newFP}}, prev: sent, next: next(nil), peer: fxPeer, covers: true},
		{name: "the group reports other CAs", caRef: ref, group: &caGroup{peer: fxPeer, fps: []string{newFP}}, prev: sent, next: next(nil), peer: fxPeer},
		{name: "the connection changed too", caRef: ref, group: &caGroup{peer: fxPeer, fps: []string{oldFP, newFP}}, prev: sent, next: next(func(ls *peerv1.LinkStatus) { ls.Connected = false }), peer: fxPeer},
		{name: "the key in effect changed too", caRef: ref, group: &caGroup{peer: fxPeer, fps: []string{oldFP, newFP}}, prev: sent, next: next(func(ls *peerv1.LinkStatus) { ls.AppliedApiKeyId = "k1" }), peer: fxPeer},
		{name: "the group went to another peer", caRef: ref, group: &caGroup{peer: "north", fps: []string{oldFP, newFP}}, prev: sent, next: next(nil), peer: fxPeer},
		{name: "no CAStatus for the group", caRef: ref, prev: sent, next: next(nil), peer: fxPeer},
		{name: "credentials with the bundle inline", group: &caGroup{peer: fxPeer, fps: []string{oldFP, newFP}}, prev: sent, next: next(nil), peer: fxPeer},
		{name: "nothing sent yet", caRef: ref, group: &caGroup{peer: fxPeer, fps: []string{oldFP, newFP}}, next: next(nil), peer: fxPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := &Importer{answers: map[link.ID]*received{id: {peer: fxPeer, creds: &peerv1.Credentials{CaRef: tc.caRef}}}, caGroups: caStatuses{}}
			if tc.group != nil {
				im.caGroups[g] = *tc.group
			}
			if got := im.coveredByCAStatusLocked(id, tc.peer, tc.prev, tc.next); got != tc.covers {
				t.Fatalf("covered = %v, want %v", got, tc.covers)
			}
		})
	}
}
