package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/wiring"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestManualWiring: with wiring: manual the agent never edits the Elasticsearch resource; the
// RemoteCluster reports the exact snippet, and once the user applies it as the snippet says
// (a merge patch), the link connects.
func TestManualWiring(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := setupLink(ctx, t, "west", "east", "manual", "west-manual", nil, func(rc *v1alpha1.RemoteCluster) {
		rc.Spec.Wiring = v1alpha1.WiringManual
	})
	rc, err := l.local.WaitRemoteCluster(ctx, l.ns, l.alias, 60*time.Second, func(rc *v1alpha1.RemoteCluster) bool {
		c := harness.Condition(rc, v1alpha1.ConditionTrustApplied)
		return c != nil && c.Reason == v1alpha1.ReasonManualWiringRequired && rc.Status.WiringSnippet != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := l.local.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(l.ns).Get(ctx, "ccs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// (ECK itself may bump the generation; what matters is that none of the wiring is there.)
	if missing, err := wiring.Missing(es); err != nil || len(missing) == 0 || es.GetAnnotations()[wiring.AnnotationWiring] != "" {
		t.Fatalf("the agent wired the Elasticsearch resource in manual mode (missing=%v, err=%v)", missing, err)
	}
	t.Logf("snippet:\n%s", rc.Status.WiringSnippet)
	// The agent's own Elasticsearch user is part of the snippet, not wired by the agent.
	if wiring.RecordedAuth(es) || !strings.Contains(rc.Status.WiringSnippet, "secretName: ccs-ecklink-user") || !strings.Contains(rc.Status.WiringSnippet, "secretName: ccs-ecklink-roles") {
		t.Fatalf("manual mode: spec.auth wired by the agent (%v), or the snippet does not name the agent's user", wiring.RecordedAuth(es))
	}

	// The user applies the snippet, as its header says: a merge patch.
	patch, err := yaml.YAMLToJSON([]byte(rc.Status.WiringSnippet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.local.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(l.ns).Patch(ctx, "ccs", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	probe := l.connect(ctx, t)
	requireNoDisconnects(t, probe.Stop())
	after, err := l.local.CRDs.RemoteClusters().Get(ctx, l.ns, l.alias)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.WiringSnippet != "" {
		t.Error("the snippet is still reported after it was applied")
	}
	es, _ = l.local.Env.Dynamic.Resource(testbed.ElasticsearchGVR).Namespace(l.ns).Get(ctx, "ccs", metav1.GetOptions{})
	nodeSets, _, _ := unstructuredSlice(es.Object, "spec", "nodeSets")
	if count, _ := nodeSets[0].(map[string]any)["count"].(int64); count != 1 {
		t.Errorf("nodeSets[0].count = %v after applying the snippet, want the user's 1", nodeSets[0].(map[string]any)["count"])
	}
}
