package protocol

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestRouterPassesRefusals: a refusal from either half reaches the stream as the one refusal
// type, with the half's reason and words (the Nack the peer gets; the stream logs it once,
// peering.TestRefusalReachesNackLoggedOnce), and the router logs nothing of it itself.
func TestRouterPassesRefusals(t *testing.T) {
	fx := newRouterFixture(t)
	l := &peerv1.Link{LocalNamespace: fuzzNS, LocalElasticsearch: "ccs", Alias: fuzzAlias}
	g := link.CAGroup{ExportCA: strings.Repeat("ab", 8), Namespace: fuzzNS, Elasticsearch: "ccs"}
	for _, tt := range []struct {
		name, seed string
		update     *peerv1.Update // when seed is empty
		reason     string
		message    string // prefix of the refusal's message
	}{
		// exporter
		{name: "exporter: import not granted", seed: "import_not_granted", reason: "PeerNotGranted",
			message: "no ClusterExport elastic/secret grants access to environment west"},
		{name: "exporter: malformed import", seed: "import_bad_version", reason: "InvalidImport",
			message: "invalid import request: elasticsearch_version"},
		{name: "exporter: malformed link status", seed: "link_status_long_message", reason: "InvalidLinkStatus",
			message: "invalid link status: message is 2048 bytes"},
		{name: "exporter: malformed CA status", update: &peerv1.Update{Resource: link.CAStatusResource(g), Sequence: 1,
			Payload: &peerv1.Update_CaStatus{CaStatus: &peerv1.CAStatus{}}}, reason: "InvalidCAStatus",
			message: "invalid CA status: observed is missing"},
		// importer
		{name: "importer: credentials not requested", seed: "credentials_not_requested", reason: "NotRequested",
			message: "no RemoteCluster requests link"},
		{name: "importer: garbage CA", seed: "credentials_garbage_ca", reason: "InvalidCA"},
		{name: "importer: malformed refusal", update: &peerv1.Update{Resource: link.Resource(link.KindCredentials, mustID(t, l)), Sequence: 9,
			Payload: &peerv1.Update_Refusal{Refusal: &peerv1.Refusal{Link: l, Reason: "not a reason"}}}, reason: "InvalidRefusal",
			message: "refusal reason must be"},
		{name: "importer: shared CA bundle", update: &peerv1.Update{Resource: link.ExportCAResource(g.ExportCA), Sequence: 1,
			Payload: &peerv1.Update_ExportCa{ExportCa: &peerv1.ExportCA{CaBundle: []byte("garbage")}}}, reason: "InvalidCA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.update
			if tt.seed != "" {
				var err error
				if u, err = readSeed(tt.seed); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			r := *fx.r
			r.log = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})
			err := r.HandleUpdate(context.Background(), fuzzPeer, u)
			var ref *peering.RefusalError
			if !errors.As(err, &ref) {
				t.Fatalf("HandleUpdate = %v, want a *peering.RefusalError", err)
			}
			if ref.Reason != tt.reason || ref.Message == "" || !strings.HasPrefix(ref.Message, tt.message) {
				t.Fatalf("refused with %s %q, want %s %q...", ref.Reason, ref.Message, tt.reason, tt.message)
			}
			if strings.Contains(logs.String(), "refused") {
				t.Fatalf("the router logged the refusal (the stream logs it):\n%s", logs.String())
			}
		})
	}
	t.Run("a Nack received", func(t *testing.T) {
		var logs bytes.Buffer
		r := *fx.r
		r.log = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})
		r.OnNack(fuzzPeer, ResourceTrust, 3, "InvalidCA", "no")
		if logs.Len() != 0 {
			t.Fatalf("the router logged a Nack received (the stream logs it):\n%s", logs.String())
		}
	})
}

func mustID(t *testing.T, l *peerv1.Link) link.ID {
	t.Helper()
	id, err := link.FromProto(l)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
