package peering

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

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

// Server implements PeerService. Serve it with the options from ServerOptions, whose TLS
// configuration (identity.ServerTLSConfig) authenticates every client as a paired environment.
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

// Register adds the Server to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) { peerv1.RegisterPeerServiceServer(g, s) }

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

// ServerOptions returns the gRPC server options for peer streams: mTLS with tlsConf (from
// identity.ServerTLSConfig), the message size limit, and keepalives that find dead connections
// even when the application is idle.
func ServerOptions(tlsConf *tls.Config, maxMessageBytes int) []grpc.ServerOption {
	if maxMessageBytes <= 0 {
		maxMessageBytes = DefaultMaxMessageBytes
	}
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}
