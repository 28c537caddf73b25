package certmodel

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/wiring"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
	"github.com/ecklink/ecklink/test/harness"
	"github.com/ecklink/ecklink/test/testbed"
)

// TestConsumerOfRelease010: a consumer agent of release 0.1.0 sends no model in its import
// request (UNSPECIFIED). West answers it as the export says, with the certificate model, and
// trusts the consumer's transport CA, as 0.1.0 exporters did: west's trust is decided by its
// export and its agent's setting either way. The CA it trusts is exactly one self-signed CA: a
// request carrying a second CA is refused with InvalidTransportCA and neither CA is trusted.
func TestConsumerOfRelease010(t *testing.T) {
	requireWorld(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	west, ns := world.Clusters["west"], "compat"
	const old = "oldie"
	fake, err := harness.NewFakePeer(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.PairWith(ctx, west); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = west.CRDs.Peers().Delete(context.Background(), harness.AgentNamespace, old) })
	exported, err := west.Elasticsearch(ctx, testbed.Elasticsearch{Namespace: ns, Name: "logs", Version: "8.13.4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := west.Export(ctx, ns, "logs", "logs", exported.TransportAddress(), []string{old}, harness.CertificateModel); err != nil {
		t.Fatal(err)
	}
	stream, err := fake.Connect(ctx, west, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	own, extra := mustCA(t, "oldie-transport"), mustCA(t, "smuggled")
	request := func(alias string, bundle []byte) link.ID {
		id := link.ID{Namespace: ns, Elasticsearch: "ccs", Alias: alias}
		a, err := stream.Update(ctx, &peerv1.Update{Resource: link.Resource(link.KindImport, id), Sequence: 1,
			Payload: &peerv1.Update_ImportRequest{ImportRequest: &peerv1.ImportRequest{Link: id.Proto(), ExportNamespace: ns, ExportName: "logs",
				ElasticsearchVersion: "8.13.4", TransportCaBundle: bundle}}}) // no model, as 0.1.0 sends it
		if err != nil || !a.Acked {
			t.Fatalf("import request %s: %+v %v", alias, a, err)
		}
		return id
	}
	answer := func(id link.ID) *peerv1.Update {
		var got *peerv1.Update
		waitFor(ctx, t, time.Minute, "west's answer for "+id.Alias, func() (bool, string) {
			for _, u := range stream.Received() {
				if u.GetResource() == link.Resource(link.KindCredentials, id) {
					got = u
				}
			}
			return got != nil, fmt.Sprintf("%d updates received", len(stream.Received()))
		})
		return got
	}
	smuggling := answer(request("old-two", append(bytes.Clone(own), extra...)))
	if r := smuggling.GetRefusal(); r == nil || r.GetReason() != v1alpha1.ReasonInvalidTransportCA {
		t.Errorf("two CAs in the import request: answered %v, want a refusal %s", smuggling.GetPayload(), v1alpha1.ReasonInvalidTransportCA)
	} else {
		t.Logf("two CAs in the import request -> refusal %s: %s", r.GetReason(), r.GetMessage())
	}
	creds := answer(request("old-logs", own)).GetCredentials()
	if creds.GetModel() != peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE || len(creds.GetCaBundle()) == 0 {
		t.Fatalf("answer to a 0.1.0 import request: %v, want certificate-model credentials", creds)
	}
	ownFP, _ := harness.Fingerprints(own)
	extraFP, _ := harness.Fingerprints(extra)
	waitFor(ctx, t, 30*time.Second, "west trusts the consumer's CA, and only that one", func() (bool, string) {
		_, fps, err := west.ConfigMapCAs(ctx, ns, wiring.TransportCAConfigMapName("logs"))
		if err != nil {
			return false, err.Error()
		}
		return contains(fps, ownFP[0]) && !contains(fps, extraFP[0]), short(fps)
	})
}
