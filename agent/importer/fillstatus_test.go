package importer

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/link"
)

// TestFillStatusRoundTrips: the status a pass computes equals what the API server stores of it
// (times at second precision), so the next pass with nothing new finds it unchanged without
// converting it (kube.ResourceClient.UpdateStatus compares the typed objects first).
func TestFillStatusRoundTrips(t *testing.T) {
	im := testImporter()
	ca := newTestCA(t, "west-transport")
	c := creds(ca, "key-1")
	c.ApiKeyExpiration = timestamppb.New(time.Now().Add(90 * 24 * time.Hour)) // milliseconds, as Elasticsearch reports
	p := &linkPlan{rc: remoteCluster("logs", ""), model: apiKeyModel{}, id: link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: "logs"},
		answer: &received{peer: fxPeer, sequence: 1, creds: c, at: time.Now()}}
	st := &state{links: map[string]*linkResult{"logs": {ca: string(ca), effectiveKey: "key-1", hasKey: true, keyID: "key-1"}}}
	rc := p.rc.DeepCopy()
	im.fillStatus(rc, p, st)
	u, err := kube.ToUnstructured(rc)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := kube.FromUnstructured[v1alpha1.RemoteCluster](u)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(rc.Status, stored.Status) {
		t.Errorf("the computed status differs from what is stored of it:\ncomputed %+v\nstored   %+v", rc.Status.APIKey, stored.Status.APIKey)
	}
}
