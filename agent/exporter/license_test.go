package exporter

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/esim"
)

// licenseFixture is an exporter whose exported Elasticsearch is an esim node, with one link.
func licenseFixture(t *testing.T) (*Exporter, *esim.Node, *record.FakeRecorder) {
	t.Helper()
	e, clients, node := keysFixture(t)
	clients.user = "ecklink-agent"
	events := record.NewFakeRecorder(10)
	e.cfg.Recorder = kube.NewRecorderFor(events)
	e.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[item]())
	t.Cleanup(e.queue.ShutDown)
	e.licenses = &license.Cache{TTL: licenseTTL, Retry: licenseRetry, Now: time.Now}
	e.links = map[string]map[link.ID]*linkState{}
	return e, node, events
}

// TestLicensePreflight: the exporter reads the exported cluster's license and takes the
// consumer's from its request; a link without a key is refused while a license below
// enterprise (or not active) is known on either side, a link that holds a key is not, an
// agent that sends no license is never refused, and the export's condition names the cluster,
// its license and what is needed.
func TestLicensePreflight(t *testing.T) {
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	target := elastic.Target{Namespace: "data", Name: "logs"}
	exp := testExport("logs-*")
	ctx := context.Background()
	ent := &peerv1.ElasticsearchLicense{Type: "enterprise", Status: "active"}
	tests := []struct {
		name            string
		exported        [2]string // esim license
		consuming       *peerv1.ElasticsearchLicense
		held            bool
		refused         bool
		condition       metav1.ConditionStatus
		mention         []string
		exportedMention string // in the condition message
	}{
		{name: "enterprise both", exported: [2]string{"enterprise", "active"}, consuming: ent, condition: metav1.ConditionTrue},
		{name: "consumer on basic", exported: [2]string{"enterprise", "active"}, consuming: &peerv1.ElasticsearchLicense{Type: "basic", Status: "active"},
			refused: true, condition: metav1.ConditionFalse,
			mention: []string{"the consuming Elasticsearch apps/ccs (environment east) has a basic (active) license", "needs an active enterprise or trial license on both clusters"}},
		{name: "exported on platinum", exported: [2]string{"platinum", "active"}, consuming: ent, refused: true, condition: metav1.ConditionFalse,
			mention: []string{"the exported Elasticsearch data/logs (environment west) has a platinum (active) license"}},
		{name: "exported license expired", exported: [2]string{"enterprise", "expired"}, consuming: ent, refused: true, condition: metav1.ConditionFalse,
			mention: []string{"enterprise (expired)"}},
		{name: "trial consumer", exported: [2]string{"enterprise", "active"}, consuming: &peerv1.ElasticsearchLicense{Type: "trial", Status: "active"}, condition: metav1.ConditionTrue},
		{name: "0.1.0 agent sends no license", exported: [2]string{"enterprise", "active"}, condition: metav1.ConditionTrue},
		{name: "a held key is kept", exported: [2]string{"basic", "active"}, consuming: ent, held: true, condition: metav1.ConditionFalse,
			mention: []string{"data/logs (environment west) has a basic (active) license"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, node, events := licenseFixture(t)
			if err := node.SetLicense(tt.exported[0], tt.exported[1]); err != nil {
				t.Fatal(err)
			}
			st := &linkState{export: "data/logs", req: &peerv1.ImportRequest{ExportNamespace: "data", ExportName: "logs", ElasticsearchLicense: tt.consuming}}
			if tt.held {
				st.status = &peerv1.LinkStatus{AppliedApiKeyId: "k1"}
			}
			e.links["east"] = map[link.ID]*linkState{id: st}
			exported, v := e.licenseVerdict(ctx, exp, "east", id, st.req, target, st)
			if exported.Type != tt.exported[0] || exported.Status != tt.exported[1] {
				t.Errorf("exported license = %v", exported)
			}
			ref := e.licenseRefusal(v, st)
			if (ref != nil) != tt.refused {
				t.Fatalf("refusal = %v, want refused %v (verdict %+v)", ref, tt.refused, v)
			}
			for _, m := range tt.mention {
				if !strings.Contains(v.Message, m) {
					t.Errorf("verdict %q does not mention %q", v.Message, m)
				}
			}
			if ref != nil && (ref.Reason != v1alpha1.ReasonLicenseInsufficient || ref.Message != v.Message) {
				t.Errorf("refusal = %+v", ref)
			}
			if !v.Sufficient {
				if ev := <-events.Events; !strings.Contains(ev, "Warning LicenseInsufficient link apps/ccs/logs of environment east: "+v.Message) {
					t.Errorf("event %q", ev)
				}
				// The same verdict again makes no second Event.
				e.licenseVerdict(ctx, exp, "east", id, st.req, target, st)
				if len(events.Events) != 0 {
					t.Errorf("a second Event for the same verdict: %q", <-events.Events)
				}
			}
			c := e.licenseCondition(ctx, exp)
			if c.Type != v1alpha1.ConditionLicenseSufficient || c.Status != tt.condition {
				t.Fatalf("condition = %+v, want %s", c, tt.condition)
			}
			if c.Status == metav1.ConditionFalse && (c.Reason != v1alpha1.ReasonLicenseInsufficient || len(tt.mention) > 0 && !strings.Contains(c.Message, tt.mention[0])) {
				t.Errorf("condition = %+v", c)
			}
			if c.Status == metav1.ConditionTrue && c.Reason != v1alpha1.ReasonLicenseSufficient {
				t.Errorf("condition = %+v", c)
			}
		})
	}
}

// TestLicenseUnknown: an exported cluster whose license cannot be read (the agent's user is
// not in effect yet) makes the condition Unknown and refuses nothing.
func TestLicenseUnknown(t *testing.T) {
	e, _, _ := licenseFixture(t)
	e.cfg.Elastic.(*userClients).user = "nobody"
	id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"}
	st := &linkState{export: "data/logs", req: &peerv1.ImportRequest{ExportNamespace: "data", ExportName: "logs"}}
	e.links["east"] = map[link.ID]*linkState{id: st}
	_, v := e.licenseVerdict(context.Background(), testExport("logs"), "east", id, st.req, elastic.Target{Namespace: "data", Name: "logs"}, st)
	if !v.Sufficient || !v.Unknown {
		t.Fatalf("verdict = %+v", v)
	}
	if ref := e.licenseRefusal(v, st); ref != nil {
		t.Fatalf("refused: %+v", ref)
	}
	if c := e.licenseCondition(context.Background(), testExport("logs")); c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.ReasonLicenseUnknown {
		t.Fatalf("condition = %+v", c)
	}
}

// TestKeyFailureOfTheLicense: a create refused by the license names it in KeysManaged.
func TestKeyFailureOfTheLicense(t *testing.T) {
	e, node, _ := licenseFixture(t)
	if err := node.SetLicense("basic", "active"); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.ensureKey(context.Background(), "east", link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "logs"},
		testExport("logs"), elastic.Target{Namespace: "data", Name: "logs"}, nil, &linkState{}, nil)
	if err == nil || keyFailureReason(err) != v1alpha1.ReasonLicenseInsufficient {
		t.Fatalf("ensureKey: %v (reason %q)", err, keyFailureReason(err))
	}
}
