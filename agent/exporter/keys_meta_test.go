package exporter

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/link"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestKeyMetadataFollowsTheExport: a change that touches only a key's metadata (the link now
// served by another export with the same access) reaches the live key in place, same id; a key
// whose metadata and access already match is left alone.
func TestKeyMetadataFollowsTheExport(t *testing.T) {
	for _, tc := range []struct {
		name       string
		keyExport  string // export named in the live key's metadata
		wantUpdate bool
	}{
		{name: "another export, same access", keyExport: "old", wantUpdate: true},
		{name: "same export, same access", keyExport: "logs", wantUpdate: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e, c := newKeyExporter(t)
			id := link.ID{Namespace: "apps", Elasticsearch: "ccs", Alias: "west-logs"}
			exp := func(name string) *v1alpha1.ClusterExport {
				return &v1alpha1.ClusterExport{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: name},
					Spec: v1alpha1.ClusterExportSpec{Peers: []string{"east"},
						Access: &v1alpha1.CrossClusterAccess{Search: []v1alpha1.SearchAccess{{Names: []string{"logs-*"}}}}}}
			}
			access := toAccess(exp("logs").Spec.Access)
			old, err := c.CreateCrossClusterKey(ctx, elastic.CreateKeyRequest{Name: link.KeyName("east", id), Access: access,
				Expiration: v1alpha1.DefaultKeyLifetime, Metadata: e.metadata("east", id, exp(tc.keyExport), elastic.AccessHash(access)).asMap()})
			if err != nil {
				t.Fatal(err)
			}
			e.encoded[old.ID] = old.Encoded
			before, err := c.GetKey(ctx, old.ID)
			if err != nil {
				t.Fatal(err)
			}
			status := &peerv1.LinkStatus{Link: id.Proto(), AppliedApiKeyId: old.ID, WrittenApiKeyId: old.ID, Connected: true}
			key, _, err := e.ensureKey(ctx, "east", id, exp("logs"), elastic.Target{Namespace: "data", Name: "logs"}, status, &linkState{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if key.id != old.ID {
				t.Fatalf("a new key %s was made; a metadata change goes in place", key.id)
			}
			after, err := c.GetKey(ctx, old.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := parseKeyMetadata(after.Metadata).Export; got != "data/logs" {
				t.Errorf("key metadata export = %q, want data/logs", got)
			}
			if updated := parseKeyMetadata(before.Metadata).Export != parseKeyMetadata(after.Metadata).Export; updated != tc.wantUpdate {
				t.Errorf("metadata updated: %v, want %v", updated, tc.wantUpdate)
			}
		})
	}
}
