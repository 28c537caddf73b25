package pairing

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// Errors of a join attempt, to tell the administrator what failed.
var (
	// ErrPinMismatch means the server at a token endpoint did not prove it holds a pinned CA: no
	// secret was sent to it.
	ErrPinMismatch = errors.New("pin mismatch")
	// ErrUnreachable means no connection could be made to a token endpoint.
	ErrUnreachable = errors.New("unreachable endpoint")
	// errRateLimited means the acceptor refused the call for the rate of pairing attempts
	// from this side's address; Join retries it after rateLimitedRetry.
	errRateLimited = errors.New("rate limited")
)

const rateLimitedRetry = 2 * time.Second

// pinVerifier checks a server's certificate chain against a token: the chain must hold a CA
// whose SPKI pin the token lists, the leaf must chain to that CA, allow server authentication,
// be valid now and name the token's environment. It remembers the CA that matched.
type pinVerifier struct {
	pins []string
	env  string
	now  func() time.Time
	mu   sync.Mutex
	// ca is the pinned CA the server proved; failed is why the server was refused.
	ca     *x509.Certificate
	failed error
}

// result returns the CA the server proved, or why it was refused (both nil before a handshake).
func (v *pinVerifier) result() (*x509.Certificate, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ca, v.failed
}

// tlsConfig returns a client configuration that verifies the server with v before the
// handshake completes, so nothing is sent to a server that fails. No client certificate is
// presented: the acceptor does not trust this agent yet.
func (v *pinVerifier) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// Go's verification needs a CA pool; the token holds only hashes of the CA keys, so
		// VerifyConnection below verifies the chain against the pinned CA the server sends.
		InsecureSkipVerify: true, //nolint:gosec // full verification in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := v.verify(cs.PeerCertificates)
			v.mu.Lock()
			v.ca, v.failed = ca, err
			v.mu.Unlock()
			return err
		},
	}
}

func (v *pinVerifier) verify(chain []*x509.Certificate) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: the server presented no certificate", ErrPinMismatch)
	}
	leaf := chain[0]
	var ca *x509.Certificate
	var seen []string
	for _, c := range chain[1:] {
		p := pemutil.SPKIPin(c)
		seen = append(seen, p)
		if c.IsCA && slices.Contains(v.pins, p) {
			ca = c
			break
		}
	}
	if ca == nil {
		if len(seen) == 0 {
			return nil, fmt.Errorf("%w: the server sent no CA certificate with its own, so it cannot be checked against the token (not an ecklink agent, or one too old to pair by token)", ErrPinMismatch)
		}
		// Whole pins: two abbreviated ones could look alike and hide the mismatch.
		return nil, fmt.Errorf("%w: the server's CA is not an agent CA pinned in the token (another agent answers at this address, or the token is stale): server CA %s, token pins %s",
			ErrPinMismatch, strings.Join(seen, ", "), strings.Join(v.pins, ", "))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: v.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("%w: the server certificate does not verify against the pinned CA: %w", ErrPinMismatch, err)
	}
	env, err := identity.EnvironmentFromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPinMismatch, err)
	}
	if env != v.env {
		return nil, fmt.Errorf("%w: the server is the agent of environment %q, the token names %q", ErrPinMismatch, env, v.env)
	}
	return ca, nil
}
