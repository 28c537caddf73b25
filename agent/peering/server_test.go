package peering

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

type fakePairer struct{}

func (fakePairer) Pair(context.Context, *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	return &peerv1.PairResponse{Identity: &peerv1.AgentIdentity{Environment: "east"}}, nil
}

// noPeerStream is a server stream whose context carries no TLS peer.
type noPeerStream struct {
	grpc.BidiStreamingServer[peerv1.SyncRequest, peerv1.SyncResponse]
}

func (noPeerStream) Context() context.Context { return context.Background() }

func TestServer(t *testing.T) {
	m, err := NewManager(testManagerConfig("east", newFakeHandler()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(ServerConfig{}); err == nil {
		t.Fatal("NewServer without a Manager succeeded")
	}
	t.Run("pair without a pairer", func(t *testing.T) {
		s, _ := NewServer(ServerConfig{Manager: m})
		_, err := s.Pair(context.Background(), &peerv1.PairRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("Pair() = %v, want Unimplemented", err)
		}
	})
	t.Run("pair with a pairer", func(t *testing.T) {
		s, _ := NewServer(ServerConfig{Manager: m, Pairer: fakePairer{}})
		resp, err := s.Pair(context.Background(), &peerv1.PairRequest{})
		if err != nil || resp.GetIdentity().GetEnvironment() != "east" {
			t.Fatalf("Pair() = %v, %v", resp, err)
		}
	})
	t.Run("sync without a verified client certificate", func(t *testing.T) {
		s, _ := NewServer(ServerConfig{Manager: m})
		err := s.Sync(noPeerStream{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Sync() = %v, want Unauthenticated", err)
		}
	})
}
