package peering

import (
	"google.golang.org/grpc"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// msgStream is what a session needs of a stream; it hides which side of Sync this agent is on.
type msgStream interface {
	Send(*peerv1.Message) error
	// Recv returns the next message; a request or response without a message yields an empty
	// Message, which the session refuses as unknown.
	Recv() (*peerv1.Message, error)
}

type serverStream struct {
	s grpc.BidiStreamingServer[peerv1.SyncRequest, peerv1.SyncResponse]
}

func (s serverStream) Send(m *peerv1.Message) error {
	return s.s.Send(&peerv1.SyncResponse{Message: m})
}

func (s serverStream) Recv() (*peerv1.Message, error) {
	req, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	if req.GetMessage() == nil {
		return &peerv1.Message{}, nil
	}
	return req.GetMessage(), nil
}

type clientStream struct {
	s grpc.BidiStreamingClient[peerv1.SyncRequest, peerv1.SyncResponse]
}

func (s clientStream) Send(m *peerv1.Message) error {
	return s.s.Send(&peerv1.SyncRequest{Message: m})
}

// CloseSend half-closes the stream.
func (s clientStream) CloseSend() error { return s.s.CloseSend() }

func (s clientStream) Recv() (*peerv1.Message, error) {
	resp, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetMessage() == nil {
		return &peerv1.Message{}, nil
	}
	return resp.GetMessage(), nil
}
