package exporter

import (
	"slices"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/internal/testenv/fakehalf"
)

// TestSweepInvalidatesUnjustifiedKeys: the periodic sweep of the API-key model invalidates a key
// this environment made once nothing justifies it (its peer is no longer a Peer, its export is
// gone or no longer grants the peer that link, or the peer's inventory no longer lists the
// link), and leaves a justified key alone: it covers what finalizers and stream messages missed
// while the agent was down.
func TestSweepInvalidatesUnjustifiedKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is what happened while the agent did not see it; nil: nothing.
		change   func(t *testing.T, f *answerFixture)
		wantLive bool
	}{
		{name: "justified", wantLive: true},
		{name: "peer gone", change: func(t *testing.T, f *answerFixture) {
			if err := f.CRDs.Peers().Delete(t.Context(), fakehalf.AgentNamespace, "east"); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, "the Peer to leave the cache", func() bool { return !f.Cache.HasPeer("east") })
		}},
		{name: "export gone", change: func(t *testing.T, f *answerFixture) {
			if err := f.CRDs.ClusterExports().Delete(t.Context(), axNS, axExport); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { _, ok := f.Cache.ClusterExportSpec(axNS, axExport); return !ok })
		}},
		{name: "export no longer grants the peer", change: func(t *testing.T, f *answerFixture) {
			exp, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
			if err != nil {
				t.Fatal(err)
			}
			exp.Spec.Peers = []string{"north"}
			exp.Generation++
			if _, err := f.CRDs.ClusterExports().Update(t.Context(), exp); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				x, ok := f.Cache.ClusterExportSpec(axNS, axExport)
				return ok && slices.Equal(x.Spec.Peers, []string{"north"})
			})
		}},
		{name: "the peer's inventory no longer lists the link", change: func(t *testing.T, f *answerFixture) {
			f.e.OnImportRemoved("east", axLink)
			f.e.OnInventory("east", nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
			f.importLink(t, "east", axLink)
			live := f.liveKeys("east", axLink)
			if len(live) != 1 {
				t.Fatalf("live keys after the answer %v, want one", live)
			}
			if tc.change != nil {
				tc.change(t, f)
			}
			if err := f.e.collectGarbage(t.Context()); err != nil {
				t.Fatalf("collectGarbage: %v", err)
			}
			if got := f.liveKeys("east", axLink); slices.Equal(got, live) != tc.wantLive {
				t.Errorf("live keys after the sweep %v (before %v), want kept: %v", got, live, tc.wantLive)
			}
		})
	}
}
