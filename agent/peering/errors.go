package peering

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors that end or refuse sessions. toStatus maps them to gRPC status codes.
var (
	// ErrTerminated ends a session after a Terminated message was sent or received.
	ErrTerminated = errors.New("peering terminated")
	// ErrPeerTerminated refuses a session with a peer whose peering was terminated.
	ErrPeerTerminated = errors.New("peering was terminated; pair again")
	// ErrIdentity refuses a peer whose Open names another environment than its certificate.
	ErrIdentity = errors.New("peer identity mismatch")
	// ErrProtocol ends a session whose peer broke the protocol.
	ErrProtocol = errors.New("protocol violation")
	// ErrUnauthenticated refuses a caller without a verified agent certificate.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrReceiveTimeout ends a session whose peer sent nothing within its receive deadline.
	ErrReceiveTimeout = errors.New("peer sent nothing within the receive deadline")
	// ErrSendTimeout ends a session whose peer stopped reading: a send did not complete within
	// Config.SendTimeout.
	ErrSendTimeout = errors.New("peer stopped reading: a send did not complete in time")
	// ErrReplaced ends a session superseded by a newer one with the same peer.
	ErrReplaced = errors.New("session replaced by a newer one")
	// ErrPairingDisabled answers Pair when no Pairer is configured.
	ErrPairingDisabled = errors.New("pairing is not enabled on this agent")
	// ErrPairingRefused answers Pair with a token that is unknown, wrong, expired or used.
	ErrPairingRefused = errors.New("pairing refused")
	// ErrPairingInvalid answers Pair with a malformed request (identity, bundle, endpoints).
	ErrPairingInvalid = errors.New("invalid pairing request")
	// ErrAlreadyPaired answers Pair from an environment that already has a Peer.
	ErrAlreadyPaired = errors.New("already paired")
	// ErrPairingRateLimited answers Pair from a source address beyond its rate limit.
	ErrPairingRateLimited = errors.New("pairing rate limited")
	// ErrCertificateRequired answers Sync on a connection without a client certificate.
	ErrCertificateRequired = errors.New("a client certificate of a paired agent is required")
	// ErrAnonymousOnly answers Pair on a connection with a client certificate: pairing is for
	// agents that are not paired yet.
	ErrAnonymousOnly = errors.New("pairing is served only to clients without a certificate")
)

// toStatus is the one place where errors become gRPC statuses.
func toStatus(err error) error {
	if err == nil || errors.Is(err, ErrTerminated) {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	for _, c := range statusCodes {
		if errors.Is(err, c.err) {
			code = c.code
			break
		}
	}
	return status.Error(code, err.Error())
}

// statusCodes are the gRPC codes of the errors that end or refuse sessions, and of the
// context's; toStatus takes the first that matches and codes.Internal for any other error.
var statusCodes = []struct {
	err  error
	code codes.Code
}{
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{ErrReceiveTimeout, codes.DeadlineExceeded},
	{ErrSendTimeout, codes.DeadlineExceeded},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrCertificateRequired, codes.Unauthenticated},
	{ErrPeerCredentials, codes.Unauthenticated},
	{ErrIdentity, codes.PermissionDenied},
	{ErrProtocol, codes.FailedPrecondition},
	{ErrPeerTerminated, codes.FailedPrecondition},
	{ErrReplaced, codes.Aborted},
	{ErrResync, codes.Aborted},
	{ErrPairingDisabled, codes.Unimplemented},
	{ErrPairingRefused, codes.PermissionDenied},
	{ErrPairingInvalid, codes.InvalidArgument},
	{ErrAlreadyPaired, codes.AlreadyExists},
	{ErrPairingRateLimited, codes.ResourceExhausted},
	{ErrAnonymousOnly, codes.FailedPrecondition},
}
