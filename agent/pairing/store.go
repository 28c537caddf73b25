package pairing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/peering"
)

// Keys of a token's Secret. It holds no secret material: only the hash of the token secret.
const (
	KeySecretHash = "secret-sha256"
	KeyExpires    = "expires"
	// KeyPeer is the environment the token is bound to: the acceptor refuses a joiner of another
	// name. Secrets of agentctl 0.1.0 lack it; such tokens are refused.
	KeyPeer   = "peer"
	KeyUsed   = "used"
	KeyUsedBy = "used-by"
	KeyUsedAt = "used-at"
	// KeyRevoked, KeyRevokedAt and KeyRevokedReason record a revocation (agentctl pair token
	// revoke, or a newer token for the same peer).
	KeyRevoked       = "revoked"
	KeyRevokedAt     = "revoked-at"
	KeyRevokedReason = "revoked-reason"

	tokenSecretPrefix = "ecklink-pairing-token-"
)

// TokenSecretName is the name of the Secret of token id.
func TokenSecretName(id string) string { return tokenSecretPrefix + id }

// TokenSecret returns the Secret that records t in namespace: the hash of its secret, its
// expiry, the environment it is bound to and its used flag.
func TokenSecret(namespace string, t *Token, peer string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: TokenSecretName(t.ID), Namespace: namespace,
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelPairing: KindToken},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			KeySecretHash: []byte(HashSecret(t.Secret)),
			KeyExpires:    []byte(t.Expires.UTC().Format(time.RFC3339)),
			KeyPeer:       []byte(peer),
			KeyUsed:       []byte("false"),
		},
	}
}

// TokenState is what a token's Secret says, for Pair, agentctl and tests.
type TokenState struct {
	ID string
	// Peer is the environment the token is bound to; empty for a token of agentctl 0.1.0.
	Peer string
	// Created is the Secret's creation time (set by the API server).
	Created time.Time
	// Expires is when the token stops working: the expiry it asks for (ReadTokenState), capped
	// by the agent (ReadTokenStateCapped).
	Expires       time.Time
	Used          bool
	UsedBy        string
	UsedAt        time.Time
	Revoked       bool
	RevokedAt     time.Time
	RevokedReason string
}

// ReadTokenState reads a token's Secret; Expires is the expiry the token asks for.
func ReadTokenState(s *corev1.Secret) TokenState {
	st := TokenState{
		ID: strings.TrimPrefix(s.Name, tokenSecretPrefix), Peer: string(s.Data[KeyPeer]), UsedBy: string(s.Data[KeyUsedBy]),
		Created: s.CreationTimestamp.Time, RevokedReason: string(s.Data[KeyRevokedReason]),
	}
	st.Expires, _ = time.Parse(time.RFC3339, string(s.Data[KeyExpires]))
	st.Used, _ = strconv.ParseBool(string(s.Data[KeyUsed]))
	st.UsedAt, _ = time.Parse(time.RFC3339, string(s.Data[KeyUsedAt]))
	st.Revoked, _ = strconv.ParseBool(string(s.Data[KeyRevoked]))
	st.RevokedAt, _ = time.Parse(time.RFC3339, string(s.Data[KeyRevokedAt]))
	return st
}

// ReadTokenStateCapped reads a token's Secret as the agent enforces it: a token works at most
// maxTTL after its Secret was created, whatever expiry it asks for (the cap does not depend on
// the tool that made the token). A Secret without a creation time never works.
func ReadTokenStateCapped(s *corev1.Secret, maxTTL time.Duration) TokenState {
	st := ReadTokenState(s)
	if st.Created.IsZero() {
		st.Expires = time.Time{}
	} else if limit := st.Created.Add(maxTTL); limit.Before(st.Expires) {
		st.Expires = limit
	}
	return st
}

// Revoke returns a copy of a token's Secret marked revoked at now for reason.
func Revoke(s *corev1.Secret, now time.Time, reason string) *corev1.Secret {
	upd := s.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	upd.Data[KeyRevoked] = []byte("true")
	upd.Data[KeyRevokedAt] = []byte(now.UTC().Format(time.RFC3339))
	upd.Data[KeyRevokedReason] = []byte(reason)
	return upd
}

// tokenStore consumes and releases tokens kept in Secrets of one namespace.
type tokenStore struct {
	kube      kubernetes.Interface
	namespace string
}

// consume marks the checked token used by env. The update carries the resourceVersion the index
// read, so of two concurrent redemptions (or a redemption and a revocation) exactly one succeeds.
func (s *tokenStore) consume(ctx context.Context, sec *corev1.Secret, env string, now time.Time) error {
	upd := sec.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	upd.Data[KeyUsed] = []byte("true")
	upd.Data[KeyUsedBy] = []byte(env)
	upd.Data[KeyUsedAt] = []byte(now.UTC().Format(time.RFC3339))
	_, err := s.kube.CoreV1().Secrets(s.namespace).Update(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("%w: token %s changed (used by another request, or revoked) while it was redeemed", peering.ErrPairingRefused, strings.TrimPrefix(sec.Name, tokenSecretPrefix))
	}
	if err != nil {
		return fmt.Errorf("failed to mark token used: %w", err)
	}
	return nil
}

// release makes a consumed token usable again, when the pairing failed after consuming it.
func (s *tokenStore) release(ctx context.Context, id string) error {
	sec, err := s.kube.CoreV1().Secrets(s.namespace).Get(ctx, TokenSecretName(id), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to release token %s: %w", id, err)
	}
	upd := sec.DeepCopy()
	upd.Data[KeyUsed] = []byte("false")
	delete(upd.Data, KeyUsedBy)
	delete(upd.Data, KeyUsedAt)
	if _, err := s.kube.CoreV1().Secrets(s.namespace).Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to release token %s: %w", id, err)
	}
	return nil
}
