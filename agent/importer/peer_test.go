package importer

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

var fxLink = link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"}

// TestImportRefusedOnReceipt: a Nack of an import request (the peer refused it on receipt and
// keeps nothing, so no Refusal follows) says why on the RemoteCluster, as a Refusal would, unless
// credentials are in effect (they stay until the peer withdraws them), the Nack is another
// peer's, or its reason is no condition reason.
func TestImportRefusedOnReceipt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applied bool
		peer    string
		reason  string
		// want is the CredentialsApplied reason after the Nack and a pass ("": not PeerNotGranted).
		want    string
		wantKey bool
	}{
		{name: "nothing applied yet", peer: fxPeer, reason: v1alpha1.ReasonPeerNotGranted, want: v1alpha1.ReasonPeerNotGranted},
		{name: "credentials in effect stay", applied: true, peer: fxPeer, reason: v1alpha1.ReasonPeerNotGranted, wantKey: true},
		{name: "another peer's Nack", peer: "north", reason: v1alpha1.ReasonPeerNotGranted},
		{name: "no condition reason", peer: fxPeer, reason: "Not a reason!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, remoteCluster("logs", ""))
			f.connectAll()
			if tc.applied {
				f.sendKey(t, "logs", "key-1")
			}
			f.reconcile(t)
			f.settle(t)

			f.im.OnImportRefused(tc.peer, fxLink, tc.reason, "no export data/logs\x1b[31m for you")
			f.reconcile(t)
			c := condition(f.remoteCluster(t, "logs"), v1alpha1.ConditionCredentialsApplied)
			switch {
			case c == nil:
				t.Fatal("no CredentialsApplied condition")
			case tc.want != "" && (c.Reason != tc.want || !strings.Contains(c.Message, "no export data/logs") || strings.Contains(c.Message, "\x1b")):
				t.Errorf("CredentialsApplied %s %q, want %s with the peer's message cleaned", c.Reason, c.Message, tc.want)
			case tc.want == "" && c.Reason == v1alpha1.ReasonPeerNotGranted:
				t.Errorf("CredentialsApplied %s %q: the Nack must not count", c.Reason, c.Message)
			}
			if got := f.applied(t).keyID("logs"); (got != "") != tc.wantKey {
				t.Errorf("key applied %q, want one: %v", got, tc.wantKey)
			}
		})
	}
}

// TestAppliedSequences: what Open tells the peer it applied comes from the RemoteClusters'
// status, one less for a link whose credentials this process has not received again, so that
// the peer resends them; links of other peers and links with nothing applied are left out.
func TestAppliedSequences(t *testing.T) {
	withSequence := func(alias, peer string, seq int64) *v1alpha1.RemoteCluster {
		rc := remoteCluster(alias, "")
		rc.Spec.Peer = peer
		rc.Status.AppliedSequence = seq
		return rc
	}
	f := newFixture(t, withSequence("logs", fxPeer, 5), withSequence("metrics", fxPeer, 1), withSequence("fresh", fxPeer, 0), withSequence("other", "north", 7))
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersSharedOf(fxNS, fxES)) == 4 })
	res := func(alias string) string {
		return link.Resource(link.KindCredentials, link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: alias})
	}
	check := func(when string, want map[string]uint64) {
		t.Helper()
		got := f.im.AppliedSequences(fxPeer)
		if len(got) != len(want) {
			t.Fatalf("%s: AppliedSequences = %v, want %v", when, got, want)
		}
		for r, seq := range want {
			if got[r] != seq {
				t.Fatalf("%s: AppliedSequences = %v, want %v", when, got, want)
			}
		}
	}
	// After a restart: nothing received yet, so every sequence is one less (metrics' 0 is left out).
	check("after a restart", map[string]uint64{res("logs"): 4})
	if err := f.im.OnCredentials(fxPeer, 5, apiKeyCredentials("logs", "key-1", newTestCA(t, "west-transport"))); err != nil {
		t.Fatal(err)
	}
	check("once the credentials came again", map[string]uint64{res("logs"): 5})
	if got := f.im.AppliedSequences("north"); got[res("other")] != 6 || len(got) != 1 {
		t.Errorf("AppliedSequences(north) = %v, want other at 6", got)
	}
}

// TestInventoryKeepsAnswers: a link missing from the peer's inventory keeps what it applied (a
// peer that restarted lists nothing until it answered the resent requests); only Removed
// withdraws.
func TestInventoryKeepsAnswers(t *testing.T) {
	f := newAppliedFixture(t)
	f.im.OnInventory(fxPeer, []string{"trust", "credentials/search/ccs/other", "not a resource"})
	f.reconcile(t)
	if got := f.applied(t).keyID("logs"); got != "key-1" {
		t.Fatalf("key after an inventory without the link %q, want key-1", got)
	}
	f.im.OnCredentialsRemoved(fxPeer, fxLink)
	f.reconcile(t)
	if got := f.applied(t).keyID("logs"); got != "" {
		t.Fatalf("key after Removed %q, want none", got)
	}
}

// TestExportCARemovedKeepsHeldBundles: a shared bundle the peer withdrew is forgotten, so new
// credentials naming it wait for it again, while links that hold it keep it.
func TestExportCARemovedKeepsHeldBundles(t *testing.T) {
	im := testImporter()
	ref := link.ExportCAID("data", "logs")
	ca := newTestCA(t, "one")
	wire := &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: "k", CaRef: ref, ProxyAddress: "x:1"}
	if err := im.OnExportCA(fxPeer, ref, &peerv1.ExportCA{CaBundle: ca}); err != nil {
		t.Fatal(err)
	}
	c, resolved, err := im.resolveCARef(fxPeer, wire)
	if err != nil || !resolved {
		t.Fatalf("resolveCARef with the bundle: resolved %v, err %v", resolved, err)
	}
	im.store(fxLink, &received{peer: fxPeer, creds: c})

	im.OnExportCARemoved("north", ref) // another peer's removal changes nothing
	if _, resolved, _ := im.resolveCARef(fxPeer, wire); !resolved {
		t.Fatal("another peer's removal dropped the bundle")
	}
	im.OnExportCARemoved(fxPeer, ref)
	if _, resolved, err := im.resolveCARef(fxPeer, wire); err != nil || resolved {
		t.Fatalf("resolveCARef after the removal: resolved %v, err %v; want to wait", resolved, err)
	}
	if got := im.answers[fxLink]; got == nil || string(got.creds.GetCaBundle()) != string(ca) {
		t.Fatal("the link lost the bundle it holds")
	}
}

// TestPeerStateChangedQueuesItsLinks: a peer's stream coming up or going down queues a pass for
// each Elasticsearch with a link to that peer, and for no other.
func TestPeerStateChangedQueuesItsLinks(t *testing.T) {
	other := remoteCluster("metrics", "")
	other.Spec.Peer = "north"
	other.Spec.ElasticsearchRef.Name = "other"
	f := newFixture(t, remoteCluster("logs", ""), other)
	waitCache(t, func() bool { return len(f.im.cfg.Cache.RemoteClustersShared()) == 2 })
	for f.im.queue.Len() > 0 { // what the informer's adds queued
		k, _ := f.im.queue.Get()
		f.im.queue.Done(k)
		f.im.queue.Forget(k)
	}
	f.im.PeerStateChanged(fxPeer)
	if f.im.queue.Len() != 1 {
		t.Fatalf("queued %d, want search/ccs only", f.im.queue.Len())
	}
	if k, _ := f.im.queue.Get(); k != (types.NamespacedName{Namespace: fxNS, Name: fxES}) {
		t.Fatalf("queued %v, want search/ccs", k)
	}
	f.im.PeerStateChanged("south")
	if f.im.queue.Len() != 0 {
		t.Fatalf("a peer without links queued %d", f.im.queue.Len())
	}
}
