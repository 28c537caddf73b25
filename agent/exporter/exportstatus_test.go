package exporter

import (
	"github.com/ecklink/ecklink/test/esim"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/eck"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// exportStatus runs one export pass and reads the export back.
func (f *answerFixture) exportStatus(t *testing.T) *v1alpha1.ClusterExport {
	t.Helper()
	if _, err := f.e.reconcileExport(t.Context(), axNS, axExport); err != nil {
		t.Fatalf("export pass: %v", err)
	}
	exp, err := f.CRDs.ClusterExports().Get(t.Context(), axNS, axExport)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// serverEnabledWritten says whether the Elasticsearch resource has, or was written with,
// spec.remoteClusterServer.enabled true. (The fake API server takes a later write from a stale
// copy where a real one would answer a conflict, so the writes are what tell.)
func serverEnabledWritten(f *answerFixture) bool {
	for _, a := range f.Dynamic.Actions() {
		var obj *unstructured.Unstructured
		switch a := a.(type) {
		case k8stesting.CreateAction: // an UpdateAction too (the same methods)
			obj, _ = a.GetObject().(*unstructured.Unstructured)
		}
		if obj == nil || a.GetResource() != eck.ElasticsearchGVR {
			continue
		}
		if on, _, _ := unstructured.NestedBool(obj.Object, "spec", "remoteClusterServer", "enabled"); on {
			return true
		}
	}
	return false
}

// TestExportServerCondition: the export pass reports whether the exported Elasticsearch serves
// remote clusters, and turns the server on only when the export opts in
// (spec.enableRemoteClusterServer), with a Warning Event that ECK restarts the cluster.
func TestExportServerCondition(t *testing.T) {
	for _, tc := range []struct {
		name              string
		enabled, optIn    bool
		noES              bool
		reason            string
		wantEnabled       bool
		wantEventContains string
	}{
		{name: "enabled", enabled: true, reason: v1alpha1.ReasonServerEnabled, wantEnabled: true},
		{name: "disabled", reason: v1alpha1.ReasonServerDisabled},
		{name: "disabled, export opts in", optIn: true, reason: v1alpha1.ReasonServerEnabling, wantEnabled: true, wantEventContains: "ECK restarts the cluster"},
		{name: "no Elasticsearch", noES: true, reason: v1alpha1.ReasonElasticsearchNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := axExportObject("east")
			exp.Spec.EnableRemoteClusterServer = tc.optIn
			es := axElasticsearch(tc.enabled)
			if tc.noES {
				es = nil
			}
			f := newAnswerFixture(t, exp, es)
			got := f.exportStatus(t)
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRemoteClusterServerEnabled)
			if c == nil || c.Reason != tc.reason {
				t.Fatalf("RemoteClusterServerEnabled %+v, want %s", c, tc.reason)
			}
			if !tc.noES && serverEnabledWritten(f) != tc.wantEnabled {
				t.Errorf("spec.remoteClusterServer.enabled written true: %v, want %v", !tc.wantEnabled, tc.wantEnabled)
			}
			if tc.wantEventContains != "" {
				found := false
				for len(f.Events.Events) > 0 {
					if ev := <-f.Events.Events; strings.Contains(ev, tc.wantEventContains) {
						found = true
					}
				}
				if !found {
					t.Errorf("no Event saying %q", tc.wantEventContains)
				}
			}
			if r := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); tc.reason != v1alpha1.ReasonServerEnabled && (r == nil || r.Status != metav1.ConditionFalse) {
				t.Errorf("Ready %+v, want False while the server is not enabled", r)
			}
		})
	}
}

// TestExportStatusLinksAndKeyFailures: the export's status lists each link served with the key
// sent, its address and server name, and KeysManaged: False naming the link while its key
// cannot be managed (Elasticsearch unavailable), True again once the next pass succeeds.
func TestExportStatusLinksAndKeyFailures(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	f.importLink(t, "east", axLink)
	key := f.credentials("east", axLink).GetApiKeyId()
	got := f.exportStatus(t)
	if got.Status.ProxyAddress != axProxy || got.Status.ServerName != "logs-es-remote-cluster.data.svc" {
		t.Errorf("status address %q server name %q", got.Status.ProxyAddress, got.Status.ServerName)
	}
	if got.Status.LinkCount != 1 || len(got.Status.Links) != 1 || got.Status.Links[0].APIKeyID != key || got.Status.Links[0].Peer != "east" || got.Status.Links[0].Alias != axLink.Alias {
		t.Fatalf("status links %+v (count %d), want the link with key %s", got.Status.Links, got.Status.LinkCount, key)
	}
	for typ, reason := range map[string]string{v1alpha1.ConditionAddressResolved: v1alpha1.ReasonAddressFromSpec, v1alpha1.ConditionKeysManaged: v1alpha1.ReasonApplied} {
		if c := meta.FindStatusCondition(got.Status.Conditions, typ); c == nil || c.Reason != reason || c.Status != metav1.ConditionTrue {
			t.Errorf("%s %+v, want True %s", typ, c, reason)
		}
	}

	// One pass of the link through the queue, as the workers run it: its failure is noted.
	runLink := func() {
		t.Helper()
		drain(f.e)
		f.e.queue.Add(item{kind: "link", peer: "east", link: axLink})
		it, _ := f.e.queue.Get()
		if it.kind != "link" {
			t.Fatalf("queued %+v, want the link", it)
		}
		f.e.process(t.Context(), it)
		f.e.queue.Done(it)
	}
	f.faults.Set(esim.Fault{Method: "POST", Prefix: "/_security/_query/api_key", Status: 503, ErrType: "unavailable_shards_exception"})
	runLink()
	c := meta.FindStatusCondition(f.exportStatus(t).Status.Conditions, v1alpha1.ConditionKeysManaged)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonElasticsearchUnavailable || !strings.Contains(c.Message, axLink.String()) {
		t.Fatalf("KeysManaged during the failure %+v, want False ElasticsearchUnavailable naming the link", c)
	}
	// The export pass computes its status from the informer's copy and writes only what
	// differs from it: the recovery pass must see the False it is to replace (under load the
	// informer lagged the write, the pass found True = True and wrote nothing).
	waitFor(t, func() bool {
		exp, ok := f.e.cfg.Cache.ClusterExport(axNS, axExport)
		if !ok {
			return false
		}
		c := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionKeysManaged)
		return c != nil && c.Status == metav1.ConditionFalse
	})
	f.faults.Set()
	runLink()
	if c := meta.FindStatusCondition(f.exportStatus(t).Status.Conditions, v1alpha1.ConditionKeysManaged); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("KeysManaged after recovery %+v, want True", c)
	}
	if f.credentials("east", axLink).GetApiKeyId() != key {
		t.Error("the key changed across an Elasticsearch outage")
	}
}

// TestReceiptThroughTheCache: the receipt checks on the real informer cache: an unpaired
// environment and an export that does not name the peer are refused on receipt with their
// reason and cost no key; the export's link limit refuses the link beyond it, naming the setting.
func TestReceiptThroughTheCache(t *testing.T) {
	f := newAnswerFixture(t, axExportObject("east"), axElasticsearch(true))
	f.e.cfg.LinksPerExport = 1
	send := func(peer string, id link.ID) string {
		return nackReason(f.e.OnImport(peer, &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: axNS, ExportName: axExport}))
	}
	second := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "second"}
	for _, tc := range []struct {
		peer   string
		id     link.ID
		reason string
	}{
		{"mallory", axLink, v1alpha1.ReasonPeerNotFound},
		{"north", axLink, v1alpha1.ReasonPeerNotGranted},
		{"east", axLink, ""},
		{"east", second, ReasonLinkLimitExceeded},
	} {
		if got := send(tc.peer, tc.id); got != tc.reason {
			t.Errorf("%s %s: answered %q, want %q", tc.peer, tc.id.Alias, got, tc.reason)
		}
	}
	if r := f.refusalOf("east", second); r == nil || !strings.Contains(r.GetMessage(), "limits.linksPerExport") {
		t.Errorf("Refusal of the link beyond the limit %v, want one naming limits.linksPerExport", r)
	}
	f.pass(t, "east", axLink)
	f.pass(t, "east", second) // not held: nothing to do
	if n := len(f.node.APIKeys()); n != 1 {
		t.Errorf("%d keys made, want one for the one granted link", n)
	}
}
