package protocol

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Wrap returns the update of resource carrying payload: one of *peerv1.ImportRequest,
// *peerv1.Credentials, *peerv1.Refusal, *peerv1.LinkStatus, *peerv1.Trust, *peerv1.ExportCA or
// *peerv1.CAStatus. It does not copy payload (Stream.Publish does).
func Wrap(resource string, payload proto.Message) (*peerv1.Update, error) {
	u := &peerv1.Update{Resource: resource}
	switch p := payload.(type) {
	case *peerv1.ImportRequest:
		u.Payload = &peerv1.Update_ImportRequest{ImportRequest: p}
	case *peerv1.Credentials:
		u.Payload = &peerv1.Update_Credentials{Credentials: p}
	case *peerv1.Refusal:
		u.Payload = &peerv1.Update_Refusal{Refusal: p}
	case *peerv1.LinkStatus:
		u.Payload = &peerv1.Update_LinkStatus{LinkStatus: p}
	case *peerv1.Trust:
		u.Payload = &peerv1.Update_Trust{Trust: p}
	case *peerv1.ExportCA:
		u.Payload = &peerv1.Update_ExportCa{ExportCa: p}
	case *peerv1.CAStatus:
		u.Payload = &peerv1.Update_CaStatus{CaStatus: p}
	default:
		return nil, fmt.Errorf("failed to publish: unsupported payload type %T", payload)
	}
	return u, nil
}

// Stream is the part of the stream layer (peering.Manager) that the application publishes through.
type Stream interface {
	Publish(peer string, u *peerv1.Update) error
	Remove(peer, resource string) error
	Resync(peer string)
}

// Outbox lets the halves publish payload messages: it wraps each one (Wrap) and hands it to the
// stream. It satisfies exporter.Outbox and importer.Outbox.
type Outbox struct{ stream Stream }

// NewOutbox returns an Outbox publishing through s.
func NewOutbox(s Stream) Outbox { return Outbox{stream: s} }

// Publish sets the content of resource for peer (see peering.Manager.Publish).
func (o Outbox) Publish(peer, resource string, payload proto.Message) error {
	u, err := Wrap(resource, payload)
	if err != nil {
		return err
	}
	return o.stream.Publish(peer, u)
}

// Remove withdraws resource from peer.
func (o Outbox) Remove(peer, resource string) error { return o.stream.Remove(peer, resource) }

// Resync restarts the stream with peer.
func (o Outbox) Resync(peer string) { o.stream.Resync(peer) }
