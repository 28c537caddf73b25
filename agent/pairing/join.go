package pairing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ecklink/ecklink/internal/logging"
	"github.com/ecklink/ecklink/internal/pemutil"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Joined is the outcome of a successful join.
type Joined struct {
	// Acceptor is the acceptor's identity as it answered.
	Acceptor *peerv1.AgentIdentity
	// CAs are the acceptor's CA certificates (validated).
	CAs []*x509.Certificate
	// Endpoint is the token endpoint that answered.
	Endpoint string
}

// JoinOptions tune Join.
type JoinOptions struct {
	// Timeout bounds each endpoint's attempt (default 10s).
	Timeout time.Duration
	// Now is the clock certificates are checked by (default time.Now).
	Now func() time.Time
}

// Join redeems t at the acceptor for the agent described by self. It tries the token's
// endpoints in order: each is first checked with a bare TLS handshake against the token's pins,
// and only a server that passes receives the token secret, over a second connection verified the
// same way. An endpoint that cannot be reached or fails the pin check is skipped; a refusal by
// the acceptor ends the join, since the token may be consumed.
func Join(ctx context.Context, t *Token, self *peerv1.AgentIdentity, opts JoinOptions) (*Joined, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	req := &peerv1.PairRequest{TokenId: t.ID, TokenSecret: string(t.Secret), Identity: self}
	var errs []error
	for _, ep := range t.Endpoints {
		j, err := joinEndpoint(ctx, ep, t, req, opts)
		if err == nil {
			return j, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("failed to join %s: %w", t.Environment, ctx.Err())
		}
		errs = append(errs, fmt.Errorf("endpoint %s: %w", ep, err))
		if !errors.Is(err, ErrUnreachable) && !errors.Is(err, ErrPinMismatch) {
			break
		}
	}
	return nil, fmt.Errorf("failed to join %s: %w", t.Environment, errors.Join(errs...))
}

func joinEndpoint(ctx context.Context, ep string, t *Token, req *peerv1.PairRequest, opts JoinOptions) (*Joined, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	probe := &pinVerifier{pins: t.Pins, env: t.Environment, now: opts.Now}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: probe.tlsConfig()}
	conn, err := d.DialContext(ctx, "tcp", ep)
	if err != nil {
		return nil, classifyDial(err)
	}
	_ = conn.Close()

	v := &pinVerifier{pins: t.Pins, env: t.Environment, now: opts.Now}
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(credentials.NewTLS(v.tlsConfig())))
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	defer cc.Close()
	resp, err := pair(ctx, peerv1.NewPeerServiceClient(cc), req, v)
	if err != nil {
		return nil, err
	}
	ca, _ := v.result()
	if ca == nil {
		// Unreachable in practice: the call cannot succeed without the verified handshake.
		return nil, fmt.Errorf("%w: the connection was not verified", ErrPinMismatch)
	}
	acc := resp.GetIdentity()
	cas, err := ValidateIdentity(acc, opts.Now())
	if err != nil {
		return nil, fmt.Errorf("the acceptor's identity is invalid: %w", err)
	}
	if acc.GetEnvironment() != t.Environment {
		return nil, fmt.Errorf("the acceptor answered as environment %q, the token names %q", acc.GetEnvironment(), t.Environment)
	}
	pin := pemutil.SPKIPin(ca)
	if !slices.ContainsFunc(cas, func(c *x509.Certificate) bool { return pemutil.SPKIPin(c) == pin }) {
		return nil, fmt.Errorf("the acceptor's CA bundle lacks the pinned CA %s that its server certificate chains to", pin)
	}
	return &Joined{Acceptor: acc, CAs: cas, Endpoint: ep}, nil
}

// pair calls Pair, again while the acceptor answers that this source is rate limited (the
// refusal comes before the token is looked at, so a retry is safe) and ctx allows.
func pair(ctx context.Context, c peerv1.PeerServiceClient, req *peerv1.PairRequest, v *pinVerifier) (*peerv1.PairResponse, error) {
	for {
		resp, err := c.Pair(ctx, req)
		if err == nil {
			return resp, nil
		}
		err = fromStatus(err, v)
		if !errors.Is(err, errRateLimited) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(rateLimitedRetry):
		}
	}
}

// classifyDial names why the probe connection failed.
func classifyDial(err error) error {
	var opErr *net.OpError
	switch {
	case errors.Is(err, ErrPinMismatch):
		return err
	case errors.As(err, &opErr) && opErr.Op == "dial", errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	default:
		return fmt.Errorf("TLS handshake failed (is an ecklink agent listening there?): %w", err)
	}
}

// fromStatus turns the Pair call's error into one that names what failed.
func fromStatus(err error, v *pinVerifier) error {
	ca, failed := v.result()
	if failed != nil {
		return failed
	}
	st, _ := status.FromError(err)
	// The acceptor's words end up in the join request and the joiner's log: bounded.
	msg := logging.Clip(st.Message(), maxLoggedError)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		if ca == nil {
			return fmt.Errorf("%w: %s", ErrUnreachable, msg)
		}
		return fmt.Errorf("the acceptor did not answer: %s", msg)
	case codes.Unimplemented:
		return fmt.Errorf("the acceptor does not accept pairing tokens: %s", msg)
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %s", errRateLimited, msg)
	default:
		return fmt.Errorf("the acceptor refused: %s", msg)
	}
}
