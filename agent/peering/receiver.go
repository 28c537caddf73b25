package peering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ecklink/ecklink/internal/peertext"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// receive applies one update from the peer and returns the Ack or Nack to send. The order of
// checks matters: the rate limit comes first so a flood costs nothing but a small Nack each.
func (s *session) receive(ctx context.Context, u *peerv1.Update) *peerv1.Message {
	if !s.limiter.allow(time.Now()) {
		return nack(u, ReasonRateLimited, fmt.Sprintf("more than %g updates per second (burst %d); resend later", s.m.cfg.UpdateRate, s.m.cfg.UpdateBurst))
	}
	if n := len(u.GetNonce()); n > maxNonceLen {
		return nack(u, ReasonUnknownMessage, fmt.Sprintf("nonce is %d bytes, at most %d allowed", n, maxNonceLen))
	}
	if err := validateResource(u.GetResource()); err != nil {
		return nack(u, ReasonInvalidResource, err.Error())
	}
	if n := proto.Size(u); n > s.m.cfg.MaxUpdateBytes {
		return nack(u, ReasonTooLarge, fmt.Sprintf("update is %d bytes, at most %d allowed", n, s.m.cfg.MaxUpdateBytes))
	}
	peer, r := s.ps.name, u.GetResource()
	switch p := u.GetPayload().(type) {
	case nil:
		return nack(u, ReasonUnknownMessage, "update has no payload this agent knows")
	case *peerv1.Update_Inventory:
		if r != ResourceInventory {
			return nack(u, ReasonInvalidResource, fmt.Sprintf("an inventory must use resource key %q", ResourceInventory))
		}
		keys := p.Inventory.GetResources()
		if err := s.m.cfg.Handler.HandleInventory(ctx, peer, keys); err != nil {
			return s.refused(u, err)
		}
		s.ps.keepReceived(keys)
		return ack(u)
	}
	if r == ResourceInventory {
		return nack(u, ReasonInvalidResource, fmt.Sprintf("resource key %q is reserved for inventories", r))
	}
	if u.GetSequence() == 0 {
		return nack(u, ReasonInvalidSequence, "sequence must be at least 1")
	}
	if u.GetSequence() > MaxSequence {
		return nack(u, ReasonSequenceTooLarge, fmt.Sprintf("sequence %d is above %d, the highest allowed", u.GetSequence(), uint64(MaxSequence)))
	}
	h := hashUpdate(u)
	last := s.ps.lastReceived(r)
	switch {
	case u.GetSequence() < last.seq:
		return s.rollback(u, fmt.Sprintf("sequence %d is below %d, the last one applied", u.GetSequence(), last.seq))
	case u.GetSequence() == last.seq && last.known && last.hash == h:
		s.log.Debug("update already applied", logResource, r, logSequence, u.GetSequence())
		return ack(u)
	case u.GetSequence() == last.seq && last.known:
		return s.rollback(u, fmt.Sprintf("sequence %d was already applied with different content", u.GetSequence()))
	}
	if err := s.m.cfg.Handler.HandleUpdate(ctx, peer, u); err != nil {
		return s.refused(u, err)
	}
	if u.GetRemoved() != nil {
		// The application holds nothing of a removed resource, and neither does the receiver:
		// a peer naming ever new resources only to remove them cannot grow the records. The
		// peer sends the same removal again on its next session, which changes nothing.
		s.ps.forgetReceived(r)
		return ack(u)
	}
	s.ps.recordReceived(r, record{seq: u.GetSequence(), hash: h, known: true})
	s.log.Debug("applied update", logResource, r, logSequence, u.GetSequence())
	return ack(u)
}

func (s *session) rollback(u *peerv1.Update, msg string) *peerv1.Message {
	s.logRefused(u, ReasonSequenceRollback, logMessage, msg)
	return nack(u, ReasonSequenceRollback, msg)
}

// refused turns a handler error into a Nack. This is the one log line of a refused update
// (handlers do not log their refusals): a RefusalError's words, which the peer also reads, or
// else the error, which only this side sees (handlers keep secrets out of errors).
func (s *session) refused(u *peerv1.Update, err error) *peerv1.Message {
	reason, msg := nackFor(err)
	var ref *RefusalError
	if errors.As(err, &ref) {
		s.logRefused(u, reason, logMessage, msg)
	} else {
		s.logRefused(u, reason, logError, err.Error())
	}
	return nack(u, reason, msg)
}

// logRefused logs a refused update from the peer; key is logMessage or logError. What comes
// from the peer, or quotes it, is clipped as every peer string in a log.
func (s *session) logRefused(u *peerv1.Update, reason, key, text string) {
	s.log.Warn("refused an update from the peer", logResource, peertext.Clean(u.GetResource(), peertext.Log),
		logSequence, u.GetSequence(), logReason, peertext.Clean(reason, 64), key, peertext.Clean(text, peertext.Log))
}

// maxNonceLen bounds the nonces echoed back; ours are about 20 bytes.
const maxNonceLen = 128

func ack(u *peerv1.Update) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Ack{Ack: &peerv1.Ack{
		Nonce: u.GetNonce(), Resource: u.GetResource(), Sequence: u.GetSequence(),
	}}}
}

func nack(u *peerv1.Update, reason, message string) *peerv1.Message {
	return &peerv1.Message{Kind: &peerv1.Message_Nack{Nack: &peerv1.Nack{
		Nonce: clean(u.GetNonce(), maxNonceLen), Resource: clean(u.GetResource(), maxResourceLen), Sequence: u.GetSequence(),
		Reason: reason, Message: clean(message, 1024),
	}}}
}
