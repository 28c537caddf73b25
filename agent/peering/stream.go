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

func (s serverStream) Recv() (*peerv1.Message, error) { return received(s.s.Recv()) }

type clientStream struct {
	s grpc.BidiStreamingClient[peerv1.SyncRequest, peerv1.SyncResponse]
}

func (s clientStream) Send(m *peerv1.Message) error {
	return s.s.Send(&peerv1.SyncRequest{Message: m})
}

// CloseSend half-closes the stream.
func (s clientStream) CloseSend() error { return s.s.CloseSend() }

func (s clientStream) Recv() (*peerv1.Message, error) { return received(s.s.Recv()) }

// received is the message of a SyncRequest or SyncResponse Recv returned: an empty one when it
// carries none.
func received[T interface{ GetMessage() *peerv1.Message }](r T, err error) (*peerv1.Message, error) {
	if err != nil {
		return nil, err
	}
	if m := r.GetMessage(); m != nil {
		return m, nil
	}
	return &peerv1.Message{}, nil
}
