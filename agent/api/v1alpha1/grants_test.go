package v1alpha1

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServes(t *testing.T) {
	spec := ClusterExportSpec{
		Peers: []string{"eu-central"},
		Grants: []ExportGrant{
			{Peer: "us-east", Namespaces: []string{"search", "audit"}},
			{Peer: "ap-south", Namespaces: []string{"search"}, Elasticsearch: []string{"ccs"}},
		},
	}
	tests := []struct {
		peer, ns, es string
		want         bool
	}{
		{"eu-central", "any", "any", true},
		{"us-east", "search", "any", true},
		{"us-east", "audit", "ccs", true},
		{"us-east", "apps", "ccs", false},
		{"ap-south", "search", "ccs", true},
		{"ap-south", "search", "other", false},
		{"ap-south", "audit", "ccs", false},
		{"nobody", "search", "ccs", false},
	}
	for _, tt := range tests {
		if got := spec.Serves(tt.peer, tt.ns, tt.es); got != tt.want {
			t.Errorf("Serves(%s, %s, %s) = %v, want %v", tt.peer, tt.ns, tt.es, got, tt.want)
		}
	}
	if !spec.NamesPeer("ap-south") || spec.NamesPeer("nobody") {
		t.Error("NamesPeer")
	}
	if got := spec.GrantedPeers(); !slices.Equal(got, []string{"ap-south", "eu-central", "us-east"}) {
		t.Errorf("GrantedPeers = %v", got)
	}
}

func TestKeyLifetime(t *testing.T) {
	d := func(x time.Duration) *metav1.Duration { return &metav1.Duration{Duration: x} }
	tests := []struct {
		name                 string
		apiKey               *APIKeySettings
		wantLife, wantBefore time.Duration
	}{
		{"default: 90 days, rotated at 2/3", nil, 2160 * time.Hour, 720 * time.Hour},
		{"empty settings", &APIKeySettings{}, 2160 * time.Hour, 720 * time.Hour},
		{"expiration", &APIKeySettings{Expiration: d(30 * time.Hour)}, 30 * time.Hour, 10 * time.Hour},
		{"rotateBefore alone", &APIKeySettings{RotateBefore: d(24 * time.Hour)}, 2160 * time.Hour, 24 * time.Hour},
		{"both", &APIKeySettings{Expiration: d(3 * time.Minute), RotateBefore: d(time.Minute)}, 3 * time.Minute, time.Minute},
		{"never, only when asked", &APIKeySettings{NeverExpire: true}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			life, before := (&ClusterExportSpec{APIKey: tt.apiKey}).KeyLifetime()
			if life != tt.wantLife || before != tt.wantBefore {
				t.Errorf("KeyLifetime() = %s, %s; want %s, %s", life, before, tt.wantLife, tt.wantBefore)
			}
		})
	}
}
