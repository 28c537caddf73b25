// Package pairing pairs two agents with a one-time token, so that only the joining side needs
// to reach the accepting one (design: "Pairing").
//
// The acceptor's administrator creates a token for one joining environment (agentctl pair token
// --peer <env>): a Secret in the agent's namespace keeps only the SHA-256 hash of the token
// secret, its expiry, the environment it is bound to, and whether it was used or revoked; the
// printed token carries the acceptor's endpoints, the SPKI pins of its agent CAs, its
// environment, the token id and secret, and the expiry. The joining side's administrator hands
// the token to its own agent through a join request (agentctl pair join). That agent dials the
// acceptor, checks the server's CA against a pin before it sends anything, and calls Pair with
// the token id and secret and its own identity. The acceptor checks the secret's hash, the
// expiry, single use and the joiner's name against the binding, creates a Peer for the joiner
// (dial=false) and answers with its identity; the joiner creates a Peer for the acceptor
// (dial=true). From then on the two agents hold the usual mutually authenticated stream.
//
// Pair is answered to anyone who reaches the peer port, so the acceptor looks tokens up in memory
// (TokenIndex, an informer of the token Secrets): until a caller proved a token's secret, Pair
// costs no Kubernetes call and no certificate parsing, and while no token is open at all it
// refuses at once. Every refusal before the secret is proven gets the same answer. The agent,
// not agentctl, bounds a token's life: at most pairing.tokenMaxTTL after its Secret was created.
// Of the unused tokens bound to one environment only the newest works (a new token replaces its
// unused predecessor, as in Consul peering), and a revoked one never. Refusals are counted by
// reason and logged at most once per interval and reason.
package pairing

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ecklink/ecklink/agent/identity"
)

// TokenVersion is the version of the token format this package writes and reads.
const TokenVersion = 1

// Limits and defaults of tokens.
const (
	// DefaultTTL is how long a token is valid unless agentctl is told otherwise.
	DefaultTTL = 15 * time.Minute
	// MaxTTL bounds a token's validity: a pairing token is meant to be used at once. The agent
	// enforces its own cap (pairing.tokenMaxTTL, default 1h, at most MaxTTL) from the creation
	// of the token's Secret.
	MaxTTL = 7 * 24 * time.Hour
	// maxEncodedToken bounds the tokens decoded, before any parsing.
	maxEncodedToken = 8 << 10
	maxEndpoints    = 16
	maxPins         = 8
)

var (
	tokenIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)
	pinPattern     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Secret is a token secret. It prints as [redacted] so that it cannot reach a log line, an
// error or a status through formatting; JSON encoding keeps the value (the token needs it).
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[redacted]" }

// Token is what `agentctl pair token` prints (encoded) and `agentctl pair join` consumes.
type Token struct {
	// Version is TokenVersion.
	Version int `json:"v"`
	// Environment is the acceptor's environment name.
	Environment string `json:"environment"`
	// Endpoints are the acceptor's host:port addresses, tried in order.
	Endpoints []string `json:"endpoints"`
	// Pins are "sha256:<hex>" SPKI pins of the acceptor's agent CAs, the active one first (the
	// next one is listed too while a rotation is under way).
	Pins []string `json:"pins"`
	// ID names the token's Secret in the acceptor's namespace.
	ID string `json:"id"`
	// Secret is the one-time secret; the acceptor stores only its hash.
	Secret Secret `json:"secret"`
	// Expires is when the acceptor stops accepting the token.
	Expires time.Time `json:"expires"`
}

// NewToken returns a token with a fresh id and secret, valid until expires.
func NewToken(env string, endpoints, pins []string, expires time.Time) (*Token, error) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("failed to generate token id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("failed to generate token secret: %w", err)
	}
	t := &Token{
		Version: TokenVersion, Environment: env, Endpoints: endpoints, Pins: pins,
		ID: hex.EncodeToString(id), Secret: Secret(base64.RawURLEncoding.EncodeToString(secret)),
		Expires: expires.UTC().Truncate(time.Second),
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("failed to create token: %w", err)
	}
	return t, nil
}

// Encode returns the token as base64url (no padding) of its JSON.
func (t *Token) Encode() (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("failed to encode token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeToken parses an encoded token and validates it. Errors name the field at fault and
// never echo the input.
func DecodeToken(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxEncodedToken {
		return nil, fmt.Errorf("failed to decode token: it is %d bytes, at most %d allowed", len(s), maxEncodedToken)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("failed to decode token: not base64url (was it copied whole?)")
	}
	var t Token
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("failed to decode token: not a pairing token")
	}
	if t.Version != TokenVersion {
		return nil, fmt.Errorf("failed to decode token: version %d, this agentctl reads version %d", t.Version, TokenVersion)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("failed to decode token: %w", err)
	}
	return &t, nil
}

// Validate checks every field, naming the first bad one.
func (t *Token) Validate() error {
	if err := identity.ValidateEnvironment(t.Environment); err != nil {
		return err
	}
	if len(t.Endpoints) == 0 || len(t.Endpoints) > maxEndpoints {
		return fmt.Errorf("endpoints: want 1 to %d, got %d", maxEndpoints, len(t.Endpoints))
	}
	for i, ep := range t.Endpoints {
		if err := ValidateEndpoint(ep); err != nil {
			return fmt.Errorf("endpoints[%d]: %w", i, err)
		}
	}
	if len(t.Pins) == 0 || len(t.Pins) > maxPins {
		return fmt.Errorf("pins: want 1 to %d, got %d", maxPins, len(t.Pins))
	}
	for i, p := range t.Pins {
		if !pinPattern.MatchString(p) {
			return fmt.Errorf("pins[%d]: want sha256:<64 hex digits>", i)
		}
	}
	if !tokenIDPattern.MatchString(t.ID) {
		return fmt.Errorf("id: want 16 hex digits")
	}
	if n := len(t.Secret); n < 32 || n > 128 {
		return fmt.Errorf("secret: want 32 to 128 characters, got %d", n)
	}
	if t.Expires.IsZero() {
		return fmt.Errorf("expires: missing")
	}
	return nil
}

// ValidateTokenID checks a token id (16 hex digits).
func ValidateTokenID(id string) error {
	if !tokenIDPattern.MatchString(id) {
		return fmt.Errorf("token id %q: want 16 hex digits (agentctl pair token list shows them)", id)
	}
	return nil
}

// HashSecret returns "sha256:<hex>" of a token secret, as the token's Secret stores it. The
// secret is 256 random bits, so a plain hash cannot be reversed by guessing.
func HashSecret(s Secret) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// secretMatches compares a presented secret with a stored hash in constant time.
func secretMatches(s Secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(s)), []byte(hash)) == 1
}
