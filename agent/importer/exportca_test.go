package importer

import (
	"testing"

	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func TestOnExportCARefuses(t *testing.T) {
	ca := newTestCA(t, "shared")
	id := link.ExportCAID("data", "logs")
	for _, tc := range []struct {
		name, id string
		bundle   []byte
		reason   string
	}{
		{name: "id not hex", id: "../../etc", bundle: ca, reason: "InvalidResource"},
		{name: "id too short", id: "abcd", bundle: ca, reason: "InvalidResource"},
		{name: "not a CA", id: id, bundle: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), reason: "InvalidCA"},
		{name: "empty", id: id, reason: "InvalidCA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRefusal(t, testImporter().OnExportCA("west", tc.id, &peerv1.ExportCA{CaBundle: tc.bundle}), tc.reason)
		})
	}
}

func TestOnExportCABoundsBundlesPerPeer(t *testing.T) {
	im := testImporter()
	ca := newTestCA(t, "shared")
	for i := range maxExportCAsPerPeer {
		if err := im.OnExportCA("west", link.ExportCAID("ns", string(rune('a'+i%26))+string(rune('a'+i/26))), &peerv1.ExportCA{CaBundle: ca}); err != nil {
			t.Fatalf("bundle %d: %v", i, err)
		}
	}
	err := im.OnExportCA("west", link.ExportCAID("ns", "one-too-many"), &peerv1.ExportCA{CaBundle: ca})
	checkRefusal(t, err, "TooManyResources")
	if err := im.OnExportCA("north", link.ExportCAID("ns", "one-too-many"), &peerv1.ExportCA{CaBundle: ca}); err != nil {
		t.Fatalf("another peer has its own bound: %v", err)
	}
}

func TestSharedCAResolvesWaitingAndHeldCredentials(t *testing.T) {
	im := testImporter()
	ref := link.ExportCAID("data", "logs")
	ca1, ca2 := newTestCA(t, "one"), newTestCA(t, "two")
	a := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "a"}
	wire := &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, ApiKeyId: "k", CaRef: ref, ProxyAddress: "x:1"}

	// Credentials first (a reconnect resends in key order): they wait for the bundle.
	c, resolved, err := im.resolveCARef("west", wire)
	if err != nil || resolved {
		t.Fatalf("resolveCARef before the bundle: resolved %v, err %v", resolved, err)
	}
	if err := im.validate(c); err != nil {
		t.Fatalf("waiting credentials are valid but for the CA: %v", err)
	}
	im.holdForCA(a, &received{peer: "west", creds: c})
	if im.answers[a] != nil || im.queue.Len() != 0 {
		t.Fatal("waiting credentials must not be applied")
	}
	if err := im.OnExportCA("west", ref, &peerv1.ExportCA{CaBundle: ca1}); err != nil {
		t.Fatal(err)
	}
	if got := im.answers[a]; got == nil || string(got.creds.GetCaBundle()) != string(ca1) || got.creds.GetCaRef() != ref {
		t.Fatalf("the bundle did not resolve the waiting credentials: %+v", got)
	}
	if len(im.shared.waiting) != 0 || im.queue.Len() != 1 {
		t.Fatalf("waiting %d, full queue %d: want 0 and 1", len(im.shared.waiting), im.queue.Len())
	}
	// A renewed bundle is a CA-only change of every link naming it.
	if err := im.OnExportCA("west", ref, &peerv1.ExportCA{CaBundle: ca2}); err != nil {
		t.Fatal(err)
	}
	if string(im.answers[a].creds.GetCaBundle()) != string(ca2) || im.ca.queue.Len() != 1 {
		t.Fatalf("renewed bundle: CA path queue %d, want 1", im.ca.queue.Len())
	}
	// Credentials naming a known bundle resolve at once.
	if c, resolved, err := im.resolveCARef("west", wire); err != nil || !resolved || string(c.GetCaBundle()) != string(ca2) {
		t.Fatalf("resolveCARef after the bundle: resolved %v, err %v", resolved, err)
	}
}

func TestResolveCARefRefuses(t *testing.T) {
	ref := link.ExportCAID("data", "logs")
	for _, tc := range []struct {
		name string
		c    *peerv1.Credentials
	}{
		{name: "malformed ref", c: &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, CaRef: "XYZ"}},
		{name: "ref and bundle", c: &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_API_KEY, CaRef: ref, CaBundle: []byte("x")}},
		{name: "certificate model", c: &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, CaRef: ref}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := testImporter().resolveCARef("west", tc.c)
			checkRefusal(t, err, "InvalidCredentials")
		})
	}
}
