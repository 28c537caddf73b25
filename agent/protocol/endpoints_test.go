package protocol

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/peertrust"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func trustUpdate(seq uint64, tr *peerv1.Trust) *peerv1.Update {
	return &peerv1.Update{Resource: ResourceTrust, Sequence: seq, Payload: &peerv1.Update_Trust{Trust: tr}}
}

// TestLearnEndpoints: the endpoints a peer announces with its bundle land in its Peer status
// (deduplicated, order kept) and come first in the dial order; a bundle without endpoints (an
// agent before 0.2) leaves them; an empty list clears them; invalid ones are refused with
// InvalidEndpoints, nothing of the update applied.
func TestLearnEndpoints(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	west := f.peer("west")
	announce := func(seq uint64, eps ...string) error {
		return f.ts.HandleUpdate(ctx, "west", trustUpdate(seq, &peerv1.Trust{CaBundle: west.Bundle(), Endpoints: &peerv1.AgentEndpoints{Addresses: eps}}))
	}
	status := func() []string {
		_, p := f.trusted("west")
		return p.Status.Endpoints
	}
	if err := announce(1, "lb2.west.example:9400", "[fd00::1]:9400", "lb2.west.example:9400"); err != nil {
		t.Fatal(err)
	}
	if got := status(); !slices.Equal(got, []string{"lb2.west.example:9400", "[fd00::1]:9400"}) {
		t.Fatalf("status.endpoints = %v", got)
	}
	if _, p := f.trusted("west"); p.Status.EndpointsUpdated == nil || !slices.Equal(p.Spec.Endpoints, []string{"west.example:9400"}) {
		t.Fatalf("endpointsUpdated %v, spec.endpoints %v (must stay as written)", p.Status.EndpointsUpdated, p.Spec.Endpoints)
	}

	t.Run("an agent before 0.2 announces none", func(t *testing.T) {
		if err := f.ts.HandleUpdate(ctx, "west", trustUpdate(2, &peerv1.Trust{CaBundle: west.Bundle()})); err != nil {
			t.Fatal(err)
		}
		if got := status(); len(got) != 2 {
			t.Fatalf("status.endpoints = %v, want the learnt ones kept", got)
		}
	})
	for _, tc := range []struct {
		name string
		eps  []string
	}{
		{"too many", func() []string {
			var out []string
			for i := range 17 {
				out = append(out, fmt.Sprintf("h%d.example:9400", i))
			}
			return out
		}()},
		{"no port", []string{"lb3.west.example"}},
		{"port out of range", []string{"lb3.west.example:65536"}},
		{"a path", []string{"lb3.west.example/x:9400"}},
		{"control characters", []string{"lb3\x00.example:9400"}},
		{"too long", []string{fmt.Sprintf("%0300d.example:9400", 0)}},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			err := announce(3, tc.eps...)
			ref, ok := err.(*peering.RefusalError)
			if !ok || ref.Reason != ReasonInvalidEndpoints {
				t.Fatalf("HandleUpdate() = %v, want refusal %s", err, ReasonInvalidEndpoints)
			}
			if got := status(); len(got) != 2 {
				t.Fatalf("status.endpoints = %v after a refusal", got)
			}
		})
	}
	t.Run("an agent that only dials clears them", func(t *testing.T) {
		if err := announce(4); err != nil {
			t.Fatal(err)
		}
		if got := status(); len(got) != 0 {
			t.Fatalf("status.endpoints = %v, want none", got)
		}
	})
}

// TestPublishAnnouncesEndpoints: this agent's bundle goes out with its advertised endpoints.
func TestPublishAnnouncesEndpoints(t *testing.T) {
	f := newTrustFixture(t)
	f.peer("west")
	f.ts.publishAll()
	tr := f.out.last("west")
	if tr == nil || !slices.Equal(tr.GetEndpoints().GetAddresses(), []string{"agent.east.example:9400"}) || len(tr.GetCaBundle()) == 0 {
		t.Fatalf("published %v", tr)
	}
}

// TestTrustWireCompatible: agents before 0.2 know Trust with field 1 only. The new field is a
// new number, so their decoder keeps the bundle and skips the endpoints; and a bundle they send
// decodes here with no endpoints (nil: "not announced").
func TestTrustWireCompatible(t *testing.T) {
	b, err := proto.Marshal(&peerv1.Trust{CaBundle: []byte("PEM"), Endpoints: &peerv1.AgentEndpoints{Addresses: []string{"a:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	// An old decoder: field 1 is its bundle, any other field number is unknown and skipped.
	var bundle []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("malformed tag")
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			bundle, b = v, b[m:]
			continue
		}
		if num == 1 {
			t.Fatalf("field 1 changed its wire type to %v", typ)
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatal("malformed field")
		}
		b = b[m:]
	}
	if string(bundle) != "PEM" {
		t.Fatalf("an old decoder reads bundle %q", bundle)
	}
	old := protowire.AppendTag(nil, 1, protowire.BytesType)
	old = protowire.AppendBytes(old, []byte("PEM"))
	var tr peerv1.Trust
	if err := proto.Unmarshal(old, &tr); err != nil || string(tr.GetCaBundle()) != "PEM" || tr.GetEndpoints() != nil {
		t.Fatalf("an old Trust decodes as %v (%v)", &tr, err)
	}
}

// TestTrustMigratesFromSpec: an agent before 0.2 wrote learnt bundles into spec.caBundle with
// the sequence in an annotation. Such a Peer keeps being trusted as it is, announces that
// sequence, and its next bundle goes into the trust Secret, spec and annotations untouched.
// A user who writes a new spec.caBundle later replaces what was learnt; a Secret of an earlier
// Peer of the same name counts for nothing.
func TestTrustMigratesFromSpec(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	west := f.peer("west")
	if err := west.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	staged := west.Bundle()
	_, p := f.trusted("west")
	p.Spec.CABundle = string(staged)
	p.Annotations = map[string]string{peertrust.LegacyAnnotationSequence: "5"}
	if _, err := f.crds.Peers().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if tr, _ := f.trusted("west"); string(tr.Bundle) != string(staged) || tr.Sequence != 5 || tr.Source != peertrust.SourceSpec {
		t.Fatalf("a 0.1.0 Peer is trusted as %s at sequence %d", tr.Source, tr.Sequence)
	}
	if got := f.ts.WithApplied("west", nil)[ResourceTrust]; got != 5 {
		t.Fatalf("Open announces trust sequence %d, want 5", got)
	}
	if err := west.PromoteNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	if err := west.RetirePrevious(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.ts.HandleUpdate(ctx, "west", trustUpdate(6, &peerv1.Trust{CaBundle: west.Bundle()})); err != nil {
		t.Fatal(err)
	}
	tr, p := f.trusted("west")
	if string(tr.Bundle) != string(west.Bundle()) || tr.Sequence != 6 || tr.Source != peertrust.SourceLearned {
		t.Fatalf("after the update the agent trusts %s at sequence %d", tr.Source, tr.Sequence)
	}
	if p.Spec.CABundle != string(staged) || p.Annotations[peertrust.LegacyAnnotationSequence] != "5" {
		t.Fatal("the update rewrote the Peer")
	}
	sec, err := f.kube.CoreV1().Secrets(testNS).Get(ctx, peertrust.SecretName("west"), metav1.GetOptions{})
	if err != nil || string(sec.Data[peertrust.KeyBundle]) != string(west.Bundle()) || len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != p.UID {
		t.Fatalf("trust Secret %v (%v)", sec, err)
	}

	t.Run("a new spec.caBundle wins", func(t *testing.T) {
		other := f.peer("other")
		_, p := f.trusted("west")
		p.Spec.CABundle = string(other.Bundle())
		if _, err := f.crds.Peers().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		if tr, _ := f.trusted("west"); string(tr.Bundle) != string(other.Bundle()) || tr.Source != peertrust.SourceSpec || tr.Sequence != 0 {
			t.Fatalf("after the user's change the agent trusts %s at sequence %d", tr.Source, tr.Sequence)
		}
	})
	t.Run("a Secret of an earlier Peer counts for nothing", func(t *testing.T) {
		_, p := f.trusted("west")
		p.UID = types.UID("a-new-peer")
		if tr, err := f.store.Effective(ctx, p); err != nil || tr.Source != peertrust.SourceSpec {
			t.Fatalf("a new Peer object is trusted from %s (%v)", tr.Source, err)
		}
	})
}
