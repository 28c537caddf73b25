package peering

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/ecklink/ecklink/agent/identity"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Pairer redeems pairing tokens; the pairing package implements it.
type Pairer interface {
	Pair(ctx context.Context, req *peerv1.PairRequest) (*peerv1.PairResponse, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Manager runs the sessions (required).
	Manager *Manager
	// Pairer answers Pair; nil makes Pair return Unimplemented.
	Pairer Pairer
	// Authenticate returns the verified environment of the client of a Sync call (default
	// identity.PeerEnvironment, which trusts the handshake's verification). With a server that
	// answers Pair to anonymous clients, use identity.AuthenticatePeer, which also refuses
	// connections without a certificate and re-checks the current trust.
	Authenticate func(ctx context.Context) (string, error)
	// Logger receives the server's logs (default: the Manager's).
	Logger hclog.Logger
}

// Server implements PeerService. The agent serves it with a Port: Sync to clients with a
// certificate verified in the handshake, Pair to the others.
type Server struct {
	peerv1.UnimplementedPeerServiceServer
	m      *Manager
	pairer Pairer
	auth   func(ctx context.Context) (string, error)
	log    hclog.Logger
}

var _ peerv1.PeerServiceServer = (*Server)(nil)

// NewServer returns a Server for cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Manager == nil {
		return nil, fmt.Errorf("failed to create peering server: manager: a Manager is required")
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.Manager.log
	}
	auth := cfg.Authenticate
	if auth == nil {
		auth = identity.PeerEnvironment
	}
	return &Server{m: cfg.Manager, pairer: cfg.Pairer, auth: auth, log: log.Named("server")}, nil
}

// Pair delegates to the Pairer.
func (s *Server) Pair(ctx context.Context, req *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	if s.pairer == nil {
		return nil, toStatus(ErrPairingDisabled)
	}
	resp, err := s.pairer.Pair(ctx, req)
	return resp, toStatus(err)
}

// Sync runs the stream with the client's environment, taken from its verified certificate.
func (s *Server) Sync(stream grpc.BidiStreamingServer[peerv1.SyncRequest, peerv1.SyncResponse]) error {
	env, err := s.auth(stream.Context())
	if err != nil {
		s.log.Warn("refused stream", logError, err)
		return toStatus(fmt.Errorf("%w: %w", ErrUnauthenticated, err))
	}
	_, err = s.m.serve(stream.Context(), env, serverStream{s: stream}, false)
	return toStatus(err)
}

// syncOnly is the Server as the port's peer gRPC server offers it: connections there carry a
// verified client certificate, and pairing is for agents that have none yet.
type syncOnly struct{ *Server }

func (syncOnly) Pair(context.Context, *peerv1.PairRequest) (*peerv1.PairResponse, error) {
	return nil, toStatus(ErrAnonymousOnly)
}

// pairOnly is the Server as the port's anonymous gRPC server offers it: Sync is refused before
// anything is read.
type pairOnly struct{ *Server }

func (pairOnly) Sync(grpc.BidiStreamingServer[peerv1.SyncRequest, peerv1.SyncResponse]) error {
	return toStatus(ErrCertificateRequired)
}
