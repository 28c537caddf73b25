package app

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// standbyGate refuses peer calls while this replica does not act (a standby, or a leader whose
// informers are not synced yet): Unavailable makes the peer's dialer retry, and behind a Service
// it reaches the leader.
func (a *Agent) standbyGate() []grpc.ServerOption {
	refuse := func() error {
		return status.Error(codes.Unavailable, "this agent replica is a standby: retry, the leader serves peers")
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if !a.acting.Load() {
				return nil, refuse()
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if !a.acting.Load() {
				return refuse()
			}
			return next(srv, ss)
		}),
	}
}
