package peering

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestRefusalReachesNackLoggedOnce: whatever a handler refuses with (a RefusalError as the
// halves return it, one wrapped, or a plain error) becomes the Nack, and the stream logs it
// once, with the reason and the clipped message (the error's words only for a plain error,
// which the peer does not see).
func TestRefusalReachesNackLoggedOnce(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, tt := range []struct {
		name        string
		err         error
		wantReason  string
		wantMessage string
		wantLog     []string // substrings of the one log line
	}{
		{"importer refusal", Refuse("InvalidCA", "ca_bundle: no certificate"), "InvalidCA", "ca_bundle: no certificate",
			[]string{"reason=InvalidCA", `message="ca_bundle: no certificate"`, "peer=west", "resource=credentials/ns/es/a", "sequence=1"}},
		{"exporter refusal", Refuse("PeerNotGranted", "no ClusterExport elastic/logs grants access to environment west"), "PeerNotGranted",
			"no ClusterExport elastic/logs grants access to environment west", []string{"reason=PeerNotGranted", "grants access"}},
		{"wrapped refusal", fmt.Errorf("failed to apply: %w", Refuse("InvalidLinkStatus", "too many")), "InvalidLinkStatus", "too many",
			[]string{"reason=InvalidLinkStatus", "message=\"too many\""}},
		{"peer text clipped in the log", Refuse("InvalidRefusal", "%s\x1b[31m", long), "InvalidRefusal", long,
			[]string{"reason=InvalidRefusal", strings.Repeat("x", 256) + "..."}},
		{"internal error", errors.New("failed to write the secret: conflict"), ReasonInternal, "the receiver failed to apply the update; see its logs",
			[]string{"reason=Internal", `error="failed to write the secret: conflict"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs testenv.LogBuffer
			hs := newHarness(t, func(c *Config) {
				c.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
			})
			hs.h.refuse = func(string, *peerv1.Update) error { return tt.err }
			hs.start()
			hs.open("west", nil)
			if inv := hs.nextUpdate(); inv.GetInventory() == nil {
				t.Fatalf("want the (empty) inventory first, got %v", inv)
			}
			hs.send(&peerv1.Message{Kind: &peerv1.Message_Update{Update: &peerv1.Update{
				Resource: "credentials/ns/es/a", Sequence: 1, Nonce: "n1",
				Payload: &peerv1.Update_Refusal{Refusal: &peerv1.Refusal{Reason: "X"}},
			}}})
			nack := hs.next().GetNack()
			if nack == nil || nack.GetReason() != tt.wantReason || !strings.HasPrefix(tt.wantMessage, strings.TrimSuffix(nack.GetMessage(), "...")) {
				t.Fatalf("got Nack %v, want reason %s and message %.40q", nack, tt.wantReason, tt.wantMessage)
			}
			got := logs.Lines("refused")
			if len(got) != 1 {
				t.Fatalf("refusal logged %d times, want once:\n%s", len(got), strings.Join(got, "\n"))
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(got[0], want) {
					t.Errorf("log line %q does not contain %q", got[0], want)
				}
			}
			if strings.Contains(got[0], "\x1b") || len(got[0]) > 1024 {
				t.Errorf("log line not clipped: %q", got[0])
			}
			hs.pipe.close()
			_ = hs.wait()
		})
	}
}

// TestReceivedNackLoggedOnce: a Nack from the peer is logged once, by the stream.
func TestReceivedNackLoggedOnce(t *testing.T) {
	var logs testenv.LogBuffer
	hs := newHarness(t, func(c *Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	})
	hs.start()
	hs.open("west", nil)
	if inv := hs.nextUpdate(); inv.GetInventory() == nil {
		t.Fatalf("want the (empty) inventory first, got %v", inv)
	}
	if err := hs.m.Publish("west", wrap("trust", &peerv1.Trust{CaBundle: []byte("T")})); err != nil {
		t.Fatal(err)
	}
	u := hs.nextUpdate()
	hs.send(nackMsg(u, "InvalidCA"))
	waitFor(t, "the Nack handled", 3*time.Second, func() bool {
		return hs.h.get(func(h *fakeHandler) bool { return len(h.nacks) > 0 })
	})
	got := logs.Lines("refused")
	if len(got) != 1 || !strings.Contains(got[0], "the peer refused an update") || !strings.Contains(got[0], "reason=InvalidCA") {
		t.Fatalf("Nack received logged as %q, want one line with its reason", got)
	}
	hs.pipe.close()
	_ = hs.wait()
}
