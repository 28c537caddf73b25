package pairing

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TokenIndex keeps the token Secrets of the agent's namespace in memory, from an informer, so
// that a Pair call costs no Kubernetes API call until its token checked out. It also knows when
// no token is open at all, which makes Pair refuse at once.
type TokenIndex struct {
	kube      kubernetes.Interface
	namespace string
	maxTTL    time.Duration
	now       func() time.Time

	mu sync.RWMutex
	// tokens by id, with what the agent decided about each (usable, superseded...).
	tokens map[string]*indexedToken
	// openUntil is the latest effective expiry of a token that is usable; zero when none is.
	openUntil time.Time
	synced    func() bool
}

// indexedToken is a token Secret as Pair needs it.
type indexedToken struct {
	secret *corev1.Secret
	state  TokenState
	// supersededBy is the id of a newer unused token for the same peer.
	supersededBy string
}

// NewTokenIndex returns an index of the token Secrets in namespace. maxTTL caps every token's
// validity from its Secret's creation, whatever expiry the token asks for.
func NewTokenIndex(kube kubernetes.Interface, namespace string, maxTTL time.Duration) (*TokenIndex, error) {
	if kube == nil || namespace == "" {
		return nil, fmt.Errorf("failed to create token index: kube and namespace are required")
	}
	if maxTTL <= 0 || maxTTL > MaxTTL {
		return nil, fmt.Errorf("failed to create token index: maxTTL %s: want a duration up to %s", maxTTL, MaxTTL)
	}
	return &TokenIndex{kube: kube, namespace: namespace, maxTTL: maxTTL, now: time.Now, tokens: map[string]*indexedToken{}, synced: func() bool { return false }}, nil
}

// Start runs the informer until ctx ends and waits for its first sync.
func (x *TokenIndex) Start(ctx context.Context) error {
	inf := coreinformers.NewFilteredSecretInformer(x.kube, x.namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = LabelPairing + "=" + KindToken })
	rebuild := func(any) { x.rebuild(inf.GetIndexer().List()) }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: rebuild, UpdateFunc: func(_, n any) { rebuild(n) }, DeleteFunc: rebuild,
	}); err != nil {
		return fmt.Errorf("failed to watch pairing tokens: %w", err)
	}
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("failed to sync pairing tokens: %w", ctx.Err())
	}
	x.rebuild(inf.GetIndexer().List())
	x.mu.Lock()
	x.synced = inf.HasSynced
	x.mu.Unlock()
	return nil
}

// rebuild recomputes the index from every token Secret. Token Secrets are few (agentctl removes
// them a day after they expire) and change rarely, so a full pass per change is cheap.
func (x *TokenIndex) rebuild(objs []any) {
	secrets := make([]*corev1.Secret, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*corev1.Secret); ok {
			secrets = append(secrets, s)
		}
	}
	now := x.now()
	tokens := map[string]*indexedToken{}
	var openUntil time.Time
	for _, t := range indexTokens(secrets, x.maxTTL) {
		tokens[t.state.ID] = t
		if t.status(now) == TokenOpen && t.state.Expires.After(openUntil) {
			openUntil = t.state.Expires
		}
	}
	x.mu.Lock()
	x.tokens, x.openUntil = tokens, openUntil
	x.mu.Unlock()
}

// Statuses of a token, as agentctl lists them; all but TokenOpen are also the reasons Pair
// refuses a token whose secret the caller proved.
const (
	TokenOpen       = "open"
	TokenUsed       = "used"
	TokenRevoked    = "revoked"
	TokenUnbound    = "unbound"
	TokenSuperseded = "superseded"
	TokenExpired    = "expired"
)

// indexTokens reads the token Secrets (those labelled as tokens), newest first (by creation,
// then name), their expiry capped at maxTTL after creation (uncapped when maxTTL is 0), and decides per peer which unused token is the current one: the newest. An older
// unused token of the same peer is superseded: a new token replaces its unused predecessor, as
// with Consul peering, whether or not agentctl could mark it revoked.
func indexTokens(secrets []*corev1.Secret, maxTTL time.Duration) []*indexedToken {
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s *corev1.Secret) bool { return s.Labels[LabelPairing] != KindToken })
	sort.Slice(secrets, func(i, j int) bool {
		a, b := secrets[i].CreationTimestamp.Time, secrets[j].CreationTimestamp.Time
		if !a.Equal(b) {
			return a.After(b)
		}
		return secrets[i].Name > secrets[j].Name
	})
	out := make([]*indexedToken, 0, len(secrets))
	current := map[string]string{} // peer -> id of its newest unused, unrevoked token
	for _, s := range secrets {
		st := ReadTokenState(s)
		if maxTTL > 0 {
			st = ReadTokenStateCapped(s, maxTTL)
		}
		t := &indexedToken{secret: s, state: st}
		out = append(out, t)
		if !st.Used && !st.Revoked && st.Peer != "" {
			if newer, ok := current[st.Peer]; ok {
				t.supersededBy = newer
			} else {
				current[st.Peer] = st.ID
			}
		}
	}
	return out
}

// status decides what the token is at now.
func (t *indexedToken) status(now time.Time) string {
	switch st := t.state; {
	case st.Used:
		return TokenUsed
	case st.Revoked:
		return TokenRevoked
	case st.Peer == "":
		return TokenUnbound
	case !now.Before(st.Expires):
		return TokenExpired
	case t.supersededBy != "":
		return TokenSuperseded
	default:
		return TokenOpen
	}
}

// TokenStatus is a token as agentctl lists it.
type TokenStatus struct {
	TokenState
	// Status is one of TokenOpen, TokenUsed, TokenRevoked, TokenUnbound, TokenSuperseded and
	// TokenExpired.
	Status string
	// SupersededBy is the newer token of the same peer that replaced this one.
	SupersededBy string
}

// TokenStatuses decides the status of each token Secret at now as an agent would, newest first.
// Expires is what the token asks for: an agent redeems it at most its pairing.tokenMaxTTL after
// creation, which agentctl does not know.
func TokenStatuses(secrets []*corev1.Secret, now time.Time) []TokenStatus {
	var out []TokenStatus
	for _, t := range indexTokens(secrets, 0) {
		out = append(out, TokenStatus{TokenState: t.state, Status: t.status(now), SupersededBy: t.supersededBy})
	}
	return out
}

// Open reports whether a token may be redeemed at now. It is false before the first sync.
func (x *TokenIndex) Open(now time.Time) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.synced() && now.Before(x.openUntil)
}

// lookup returns the indexed token of id.
func (x *TokenIndex) lookup(id string) (*indexedToken, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tokens[id]
	return t, ok
}
