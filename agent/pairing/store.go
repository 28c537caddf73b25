package pairing

import (
	"context"
	"fmt"
	"strconv"
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
	KeyUsed       = "used"
	KeyUsedBy     = "used-by"
	KeyUsedAt     = "used-at"

	tokenSecretPrefix = "ecklink-pairing-token-"
)

// TokenSecretName is the name of the Secret of token id.
func TokenSecretName(id string) string { return tokenSecretPrefix + id }

// TokenSecret returns the Secret that records t in namespace: the hash of its secret, its
// expiry and its used flag.
func TokenSecret(namespace string, t *Token) *corev1.Secret {
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
			KeyUsed:       []byte("false"),
		},
	}
}

// TokenState is what a token's Secret says, for status and tests.
type TokenState struct {
	ID      string
	Expires time.Time
	Used    bool
	UsedBy  string
	UsedAt  time.Time
}

// ReadTokenState reads a token's Secret.
func ReadTokenState(s *corev1.Secret) TokenState {
	st := TokenState{ID: s.Name[len(tokenSecretPrefix):], UsedBy: string(s.Data[KeyUsedBy])}
	st.Expires, _ = time.Parse(time.RFC3339, string(s.Data[KeyExpires]))
	st.Used, _ = strconv.ParseBool(string(s.Data[KeyUsed]))
	st.UsedAt, _ = time.Parse(time.RFC3339, string(s.Data[KeyUsedAt]))
	return st
}

// tokenStore checks and consumes tokens kept in Secrets of one namespace.
type tokenStore struct {
	kube      kubernetes.Interface
	namespace string
}

// check returns the token's Secret if secret matches it and it is neither expired nor used.
// Refusals wrap peering.ErrPairingRefused and say which check failed.
func (s *tokenStore) check(ctx context.Context, id string, secret Secret, now time.Time) (*corev1.Secret, error) {
	if !tokenIDPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: the token id is malformed", peering.ErrPairingRefused)
	}
	sec, err := s.kube.CoreV1().Secrets(s.namespace).Get(ctx, TokenSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: unknown token %s (never created here, or deleted)", peering.ErrPairingRefused, id)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read token %s: %w", id, err)
	}
	if sec.Labels[LabelPairing] != KindToken {
		return nil, fmt.Errorf("%w: unknown token %s", peering.ErrPairingRefused, id)
	}
	if !secretMatches(secret, string(sec.Data[KeySecretHash])) {
		return nil, fmt.Errorf("%w: wrong secret for token %s", peering.ErrPairingRefused, id)
	}
	st := ReadTokenState(sec)
	if st.Used {
		return nil, fmt.Errorf("%w: token %s was already used (by environment %q at %s); a token works once, create a new one",
			peering.ErrPairingRefused, id, st.UsedBy, st.UsedAt.UTC().Format(time.RFC3339))
	}
	if st.Expires.IsZero() || !now.Before(st.Expires) {
		return nil, fmt.Errorf("%w: token %s expired at %s; create a new one", peering.ErrPairingRefused, id, st.Expires.UTC().Format(time.RFC3339))
	}
	return sec, nil
}

// consume marks the checked token used by env. The update carries the resourceVersion read by
// check, so of two concurrent redemptions exactly one succeeds.
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
		return fmt.Errorf("%w: token %s is being used by another request", peering.ErrPairingRefused, sec.Name[len(tokenSecretPrefix):])
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
