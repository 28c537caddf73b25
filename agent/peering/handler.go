package peering

import (
	"context"
	"errors"
	"fmt"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Nack reasons set by this package. Handlers add their own with Refuse (e.g. "InvalidCA").
const (
	ReasonSequenceRollback = "SequenceRollback"
	ReasonInvalidSequence  = "InvalidSequence"
	ReasonUnknownMessage   = "UnknownMessage"
	ReasonInvalidResource  = "InvalidResource"
	ReasonRateLimited      = "RateLimited"
	ReasonTooLarge         = "TooLarge"
	ReasonInternal         = "Internal"
)

// Handler is the application side of the stream. Every method is called from the session loop
// of the peer concerned, one at a time per peer, without locks held, so a method may call
// Manager.Publish. Methods should return quickly: the loop does nothing else meanwhile.
type Handler interface {
	// AppliedSequences returns the last sequence applied for each resource received from peer,
	// as the application persisted it. It seeds the receiver at each session start and is sent
	// to the peer in Open, so the peer resends only what changed.
	AppliedSequences(peer string) map[string]uint64
	// HandleUpdate applies an update (including a Removed payload). nil acknowledges it; an
	// error made with Refuse is sent back as that Nack; any other error is reported to the peer
	// as reason "Internal" with a generic message and logged here, so errors must not carry
	// secret material.
	HandleUpdate(ctx context.Context, peer string, update *peerv1.Update) error
	// HandleInventory receives the full list of resources the peer holds after it resent what
	// changed; the application drops what it holds from peer that is not listed.
	HandleInventory(ctx context.Context, peer string, resources []string) error
	// HandleTerminated is called when the peer ended the peering.
	HandleTerminated(peer, reason string)
	// OnAck reports that peer applied sequence seq of resource.
	OnAck(peer, resource string, seq uint64)
	// OnNack reports that peer refused sequence seq of resource.
	OnNack(peer, resource string, seq uint64, reason, message string)
	// OnConnected reports a session whose Open exchange completed.
	OnConnected(info SessionInfo)
	// OnDisconnected reports the end of a session, with the reason (nil when terminated).
	OnDisconnected(peer string, err error)
}

// NopHandler implements Handler by doing nothing; embed it to implement only some methods.
type NopHandler struct{}

// AppliedSequences returns nil.
func (NopHandler) AppliedSequences(string) map[string]uint64 { return nil }

// HandleUpdate accepts every update.
func (NopHandler) HandleUpdate(context.Context, string, *peerv1.Update) error { return nil }

// HandleInventory accepts every inventory.
func (NopHandler) HandleInventory(context.Context, string, []string) error { return nil }

// HandleTerminated does nothing.
func (NopHandler) HandleTerminated(string, string) {}

// OnAck does nothing.
func (NopHandler) OnAck(string, string, uint64) {}

// OnNack does nothing.
func (NopHandler) OnNack(string, string, uint64, string, string) {}

// OnConnected does nothing.
func (NopHandler) OnConnected(SessionInfo) {}

// OnDisconnected does nothing.
func (NopHandler) OnDisconnected(string, error) {}

// RefusalError is a handler's refusal of an update, sent to the peer as a Nack.
type RefusalError struct {
	// Reason is machine-readable, e.g. "InvalidCA".
	Reason string
	// Message explains the refusal to a human; it must not contain secret material.
	Message string
}

func (e *RefusalError) Error() string { return e.Reason + ": " + e.Message }

// Refuse returns a RefusalError; format and args build the message.
func Refuse(reason, format string, args ...any) error {
	return &RefusalError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// nackFor turns a handler error into the Nack reason and message.
func nackFor(err error) (reason, message string) {
	var r *RefusalError
	if errors.As(err, &r) {
		return r.Reason, r.Message
	}
	return ReasonInternal, "the receiver failed to apply the update; see its logs"
}
