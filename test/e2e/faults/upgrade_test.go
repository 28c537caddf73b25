package faults

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/esuser"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/test/testbed"
)

// useElasticFlag runs an agent as 0.1.0 did: as ECK's elastic user.
const useElasticFlag = "--elasticsearch-use-elastic-user"

// TestUpgradeFromElasticUser: a link made by an agent that authenticates as elastic (a 0.1.0
// install) keeps working when the exporting agent is upgraded to its own Elasticsearch user.
// Elasticsearch lets only a key's creator update it, so the agent's user replaces elastic's key
// make-before-break: its new key reaches the peer, the local side connects with it, and only
// then does elastic's key go; no sample of _remote/info is disconnected and the live key is the
// agent user's.
func TestUpgradeFromElasticUser(t *testing.T) {
	requireWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	west := world.Clusters["west"]
	restartWest := func(elastic bool) {
		t.Helper()
		west.Agent.Stop()
		west.Agent.Args = slices.DeleteFunc(west.Agent.Args, func(a string) bool { return a == useElasticFlag })
		if elastic {
			west.Agent.Args = append(west.Agent.Args, useElasticFlag)
		}
		if err := west.Agent.Start(); err != nil {
			t.Fatal(err)
		}
	}
	restartWest(true)
	t.Cleanup(func() {
		if slices.Contains(west.Agent.Args, useElasticFlag) {
			restartWest(false)
		}
	})
	l := newLink(ctx, t, "upgrade", "west-upgrade", nil)
	probe := l.connect(ctx, t, 2*time.Minute)
	old := l.requireNoLeakedKey(ctx, t, time.Minute)
	if old.Username != "elastic" {
		t.Fatalf("before the upgrade the key belongs to %q, want elastic", old.Username)
	}
	if _, err := west.Env.Kube.CoreV1().Secrets(l.ns).Get(ctx, "logs-ecklink-user", metav1.GetOptions{}); err == nil {
		t.Fatal("an agent with elasticsearch.useElasticUser provisioned its own user")
	}

	restartWest(false)
	waitFor(ctx, t, 3*time.Minute, "elastic's key replaced by the agent user's", func() (bool, string) {
		live := l.activeKeys()
		o, _ := l.remotePod.Node().APIKey(old.ID)
		return o.Invalidated && len(live) == 1 && live[0].Username == esuser.Username, "keys" + describeKeys(l.keys())
	})
	replacement := l.activeKeys()[0]
	o, _ := l.remotePod.Node().APIKey(old.ID)
	// Make before break: elastic's key went only after the local nodes restarted with the new one.
	if restarted := l.localPod.StartTime(); !o.Invalidation.After(restarted) || !restarted.After(replacement.Creation) {
		t.Errorf("elastic's key invalidated at %s, local restarted with the new key at %s, new key created at %s",
			o.Invalidation.Format(time.TimeOnly), restarted.Format(time.TimeOnly), replacement.Creation.Format(time.TimeOnly))
	}
	es, err := west.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(l.ns).Get(ctx, "logs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if missing := wiring.MissingAuth(es, esuser.Auth("logs")); len(missing) > 0 {
		t.Errorf("the upgraded agent did not wire its user: %s", strings.Join(missing, "; "))
	}
	// Links of other tests of this suite are replaced too (twice: by elastic, then back), so
	// only this link's lines count.
	if n := west.Agent.LogCount("api key made by another user is replaced by one of the agent's user: peer=east link=" + l.linkID() + " "); n != 1 {
		t.Errorf("%d replacements of %s logged, want 1", n, l.linkID())
	}
	for _, s := range probe.Stop().Disconnected {
		t.Errorf("disconnected sample at %s: %s", s.At.Format(time.RFC3339Nano), s.Reason)
	}
	l.deleteLink(ctx, t)
}
