// Package peertrust keeps the agent CA bundles that peers announce over the stream, one Secret
// per peer in the agent's namespace (ecklink-peer-trust-<environment>), so that Peer.spec stays
// what the user, or pairing, wrote: a Peer kept in Git does not drift when the peer rotates its
// CA.
//
// The bundle the agent trusts for a peer (Effective) is the learnt one while it was learnt on
// top of the Peer's current spec.caBundle, by this Peer object; otherwise spec.caBundle. So a
// user who writes a new spec.caBundle (pairing again, say) replaces what was learnt, and a
// Secret left over from an earlier Peer of the same name is ignored. Agents before 0.2 wrote
// learnt bundles into spec.caBundle itself, with the sequence in the Peer's annotation
// ecklink.io/trust-sequence: such a Peer, without a Secret, keeps being trusted as it is, and
// its first update moves the learnt trust into the Secret.
//
// The Secret is owned by its Peer (an owner reference), so Kubernetes' garbage collector
// removes it with the Peer. Only the active replica writes it; Reset drops what a replica
// remembers when it takes over.
package peertrust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// Names in the Secret.
const (
	// SecretPrefix + environment names a peer's Secret.
	SecretPrefix = "ecklink-peer-trust-"
	// KeyBundle holds the PEM bundle the peer announced.
	KeyBundle = "ca.crt"
	// AnnotationSequence is the peer's sequence of the bundle, announced in Open so the peer
	// resends only newer bundles, across restarts too.
	AnnotationSequence = "ecklink.io/trust-sequence"
	// AnnotationSpecHash is the SHA-256 of the Peer's spec.caBundle the bundle was learnt on.
	AnnotationSpecHash = "ecklink.io/spec-ca-bundle-sha256"
	// LabelPeer names the peer environment on the Secret.
	LabelPeer = "ecklink.io/peer"
	// LegacyAnnotationSequence is where agents before 0.2 kept the sequence of the bundle they
	// wrote into spec.caBundle: on the Peer itself.
	LegacyAnnotationSequence = "ecklink.io/trust-sequence"
)

// SecretName returns the name of the Secret of peer environment env.
func SecretName(env string) string { return SecretPrefix + env }

// Source says where an effective bundle comes from.
type Source string

// Sources of the effective bundle.
const (
	// SourceSpec: Peer.spec.caBundle (as paired, or as an agent before 0.2 wrote it).
	SourceSpec Source = "spec"
	// SourceLearned: the Secret, learnt over the stream.
	SourceLearned Source = "learned"
)

// Trust is the bundle an agent trusts for a peer.
type Trust struct {
	Bundle []byte
	// Sequence is the peer's sequence of Bundle, 0 if unknown.
	Sequence uint64
	Source   Source
}

// learned is what a peer's Secret holds; absent is true when there is no Secret.
type learned struct {
	absent   bool
	bundle   []byte
	seq      uint64
	specHash string
	owner    types.UID
	version  string // resourceVersion, for updates
}

// Store reads and writes the Secrets. It is safe for concurrent use.
type Store struct {
	kube      kubernetes.Interface
	namespace string
	// onChange, when set, is called after a learnt bundle changed (outside the lock).
	onChange func(env string)

	mu    sync.Mutex
	cache map[string]learned
}

// New returns a Store for the Secrets in namespace. onChange, if set, is told about each peer
// whose learnt bundle changed.
func New(kube kubernetes.Interface, namespace string, onChange func(env string)) (*Store, error) {
	if kube == nil || namespace == "" {
		return nil, fmt.Errorf("failed to create peer trust store: a Kubernetes client and a namespace are required")
	}
	return &Store{kube: kube, namespace: namespace, onChange: onChange, cache: map[string]learned{}}, nil
}

// SpecHash returns the hash of a spec.caBundle, as AnnotationSpecHash holds it.
func SpecHash(bundle string) string {
	sum := sha256.Sum256([]byte(bundle))
	return hex.EncodeToString(sum[:])
}

// Reset forgets what was read, so the next look-up reads the Secrets again (a replica taking
// over from another).
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache = map[string]learned{}
}

// Effective returns the bundle trusted for Peer p. It reads p's Secret once and remembers it;
// an API error leaves spec.caBundle in force and is returned for logging.
func (s *Store) Effective(ctx context.Context, p *v1alpha1.Peer) (Trust, error) {
	l, err := s.load(ctx, p.Spec.Environment)
	switch {
	case err != nil:
		return specTrust(p, false), err
	case l.absent:
		// Agents before 0.2 kept the sequence of the bundle they learnt on the Peer.
		return specTrust(p, true), nil
	case l.owner == p.UID && l.specHash == SpecHash(p.Spec.CABundle):
		return Trust{Bundle: l.bundle, Sequence: l.seq, Source: SourceLearned}, nil
	}
	return specTrust(p, false), nil
}

func specTrust(p *v1alpha1.Peer, legacy bool) Trust {
	t := Trust{Bundle: []byte(p.Spec.CABundle), Source: SourceSpec}
	if legacy {
		t.Sequence, _ = strconv.ParseUint(p.Annotations[LegacyAnnotationSequence], 10, 64)
	}
	return t
}

// Cached returns the bundle trusted for p from what the Store already read, without an API
// call, and whether it knew; the TLS handshake path uses it.
func (s *Store) Cached(p *v1alpha1.Peer) (Trust, bool) {
	s.mu.Lock()
	l, ok := s.cache[p.Spec.Environment]
	s.mu.Unlock()
	switch {
	case !ok:
		return Trust{}, false
	case l.absent:
		return specTrust(p, true), true
	case l.owner == p.UID && l.specHash == SpecHash(p.Spec.CABundle):
		return Trust{Bundle: l.bundle, Sequence: l.seq, Source: SourceLearned}, true
	}
	return specTrust(p, false), true
}

func (s *Store) load(ctx context.Context, env string) (learned, error) {
	s.mu.Lock()
	l, ok := s.cache[env]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	sec, err := s.kube.CoreV1().Secrets(s.namespace).Get(ctx, SecretName(env), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l = learned{absent: true}
	case err != nil:
		return learned{}, fmt.Errorf("failed to read the learnt trust of peer %s: %w", env, err)
	default:
		l = fromSecret(sec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.cache[env]; ok {
		return cur, nil // a Save raced this read: it is newer
	}
	s.cache[env] = l
	return l, nil
}

func fromSecret(sec *corev1.Secret) learned {
	l := learned{bundle: sec.Data[KeyBundle], specHash: sec.Annotations[AnnotationSpecHash], version: sec.ResourceVersion}
	l.seq, _ = strconv.ParseUint(sec.Annotations[AnnotationSequence], 10, 64)
	for _, o := range sec.OwnerReferences {
		if o.Kind == v1alpha1.KindPeer && o.Name == sec.Labels[LabelPeer] {
			l.owner = o.UID
		}
	}
	return l
}

// Save records bundle, sequence seq, as learnt for Peer p on top of its current spec.caBundle.
func (s *Store) Save(ctx context.Context, p *v1alpha1.Peer, bundle []byte, seq uint64) error {
	env := p.Spec.Environment
	if _, err := s.load(ctx, env); err != nil {
		return err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: SecretName(env), Namespace: s.namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "ecklink", LabelPeer: env},
			Annotations: map[string]string{
				AnnotationSequence: strconv.FormatUint(seq, 10),
				AnnotationSpecHash: SpecHash(p.Spec.CABundle),
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindPeer, Name: p.Name, UID: p.UID,
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KeyBundle: bundle},
	}
	s.mu.Lock()
	cur := s.cache[env]
	s.mu.Unlock()
	var out *corev1.Secret
	var err error
	if cur.absent {
		out, err = s.kube.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{})
	} else {
		sec.ResourceVersion = cur.version
		out, err = s.kube.CoreV1().Secrets(s.namespace).Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
			s.forget(env) // read it again on the next try
		}
		return fmt.Errorf("failed to write the learnt trust of peer %s: %w", env, err)
	}
	s.mu.Lock()
	s.cache[env] = fromSecret(out)
	s.mu.Unlock()
	if s.onChange != nil {
		s.onChange(env)
	}
	return nil
}

func (s *Store) forget(env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, env)
}
