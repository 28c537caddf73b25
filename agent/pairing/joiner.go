package pairing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/internal/worker"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// A join request is a Secret in the agent's namespace, labelled LabelPairing=KindJoinRequest,
// that holds a token under KeyJoinToken. `agentctl pair join` creates it; the agent redeems the
// token, records the outcome in the annotations below, drops the token from the Secret, and
// agentctl deletes the request once it read the outcome. A Secret, not a custom resource, so
// that the token is stored as a secret and the agent needs no new API or RBAC.
const (
	// JoinRequestPrefix starts the names of join request Secrets.
	JoinRequestPrefix = "ecklink-join-"
	// KeyJoinToken holds the encoded token until the agent has used it.
	KeyJoinToken = "token"
	// AnnotationJoinState is "" (pending), JoinJoining, JoinPaired or JoinFailed.
	AnnotationJoinState = "ecklink.io/join-state"
	// AnnotationJoinMessage explains the state in words (never secret material).
	AnnotationJoinMessage = "ecklink.io/join-message"
	// AnnotationJoinPeer names the environment the token pairs with, once known.
	AnnotationJoinPeer = "ecklink.io/join-peer"

	JoinJoining = "Joining"
	JoinPaired  = "Paired"
	JoinFailed  = "Failed"
)

// JoinRequest returns a join request Secret for an encoded token.
func JoinRequest(namespace, name, token string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelPairing: KindJoinRequest},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KeyJoinToken: []byte(token)},
	}
}

// JoinerConfig configures a Joiner.
type JoinerConfig struct {
	// Namespace is the agent's namespace, where join requests and Peers live.
	Namespace string
	Kube      kubernetes.Interface
	CRDs      *kube.Client
	// Self is this agent's identity, sent to the acceptor.
	Self    Self
	Version string
	Logger  hclog.Logger
	Now     func() time.Time
	// Timeout bounds each endpoint's attempt (default 10s).
	Timeout time.Duration
}

// Joiner redeems the tokens of join requests.
type Joiner struct {
	cfg   JoinerConfig
	log   hclog.Logger
	queue workqueue.TypedRateLimitingInterface[string]
	busy  atomic.Int32

	mu sync.Mutex
	// done holds the outcome of the requests this process handled, so that a failed write of
	// the outcome is retried without joining twice, and a request left "Joining" by a previous
	// process (a restart) is retried.
	done map[string]outcome
}

type outcome struct{ state, peer, msg string }

// NewJoiner checks cfg and returns a Joiner.
func NewJoiner(cfg JoinerConfig) (*Joiner, error) {
	if cfg.Namespace == "" || cfg.Kube == nil || cfg.CRDs == nil || cfg.Self == nil {
		return nil, fmt.Errorf("failed to create pairing joiner: Namespace, Kube, CRDs and Self are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Joiner{
		cfg: cfg, log: cfg.Logger.Named("pairing"),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		done:  map[string]outcome{},
	}, nil
}

// InProgress reports whether a join is under way. The agent keeps a staged CA from being
// promoted meanwhile: the new peer would not learn of it before this agent used it.
func (j *Joiner) InProgress() bool { return j.busy.Load() > 0 }

// Run watches join requests and handles them one at a time until ctx ends.
func (j *Joiner) Run(ctx context.Context) error {
	inf := coreinformers.NewFilteredSecretInformer(j.cfg.Kube, j.cfg.Namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = LabelPairing + "=" + KindJoinRequest })
	enqueue := func(o any) {
		if s, ok := o.(*corev1.Secret); ok {
			j.queue.Add(s.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }}); err != nil {
		return fmt.Errorf("failed to watch join requests: %w", err)
	}
	var informer sync.WaitGroup
	informer.Go(func() { inf.Run(ctx.Done()) })
	worker.Run(ctx, j.queue, 1, j.process)
	informer.Wait()
	return ctx.Err()
}

// process handles the join request name and retries it with backoff after a failure.
func (j *Joiner) process(ctx context.Context, name string) {
	if err := j.Handle(ctx, name); err != nil && ctx.Err() == nil {
		j.log.Warn("failed to handle join request, will retry", "request", name, "error", err)
		j.queue.AddRateLimited(name)
	} else {
		j.queue.Forget(name)
	}
}

// Handle processes the join request name if it is pending. Errors are about recording the
// outcome; the outcome of the join itself is written into the request.
func (j *Joiner) Handle(ctx context.Context, name string) error {
	secrets := j.cfg.Kube.CoreV1().Secrets(j.cfg.Namespace)
	req, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read join request: %w", err)
	}
	switch req.Annotations[AnnotationJoinState] {
	case "", JoinJoining:
	default:
		return nil
	}
	j.mu.Lock()
	o, handled := j.done[name]
	j.mu.Unlock()
	if !handled {
		if req.Annotations[AnnotationJoinState] == JoinJoining {
			j.log.Info("retrying a join request interrupted by a restart", "request", name)
		}
		if req, err = j.record(ctx, req, JoinJoining, "", "the agent is joining", false); err != nil {
			return err
		}
		o = j.handle(ctx, name, string(req.Data[KeyJoinToken]))
		j.mu.Lock()
		j.done[name] = o
		j.mu.Unlock()
	}
	_, err = j.record(ctx, req, o.state, o.peer, o.msg, true)
	return err
}

func (j *Joiner) handle(ctx context.Context, name, token string) outcome {
	j.busy.Add(1)
	defer j.busy.Add(-1)
	peer, msg, err := j.join(ctx, token)
	if err != nil {
		j.log.Warn("join failed", "request", name, "peer", peer, "error", err)
		return outcome{state: JoinFailed, peer: peer, msg: err.Error()}
	}
	j.log.Info("paired by token", "request", name, "peer", peer)
	return outcome{state: JoinPaired, peer: peer, msg: msg}
}

// record writes the state of a request; dropToken removes the token from it.
func (j *Joiner) record(ctx context.Context, req *corev1.Secret, state, peer, msg string, dropToken bool) (*corev1.Secret, error) {
	upd := req.DeepCopy()
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	upd.Annotations[AnnotationJoinState] = state
	upd.Annotations[AnnotationJoinMessage] = msg
	if peer != "" {
		upd.Annotations[AnnotationJoinPeer] = peer
	}
	if dropToken {
		delete(upd.Data, KeyJoinToken)
	}
	out, err := j.cfg.Kube.CoreV1().Secrets(j.cfg.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to record join state %s: %w", state, err)
	}
	return out, nil
}

// join redeems an encoded token and creates the Peer of the acceptor. It returns the peer's
// environment (once the token is read) and a message for the administrator.
func (j *Joiner) join(ctx context.Context, encoded string) (string, string, error) {
	t, err := DecodeToken(encoded)
	if err != nil {
		return "", "", err
	}
	now := j.cfg.Now()
	self := j.cfg.Self.Environment()
	switch {
	case !now.Before(t.Expires):
		return t.Environment, "", fmt.Errorf("token %s expired at %s; create a new one (agentctl pair token)", t.ID, t.Expires.UTC().Format(time.RFC3339))
	case t.Environment == self:
		return t.Environment, "", fmt.Errorf("the token was made by this agent's own environment %q; join it from another environment", self)
	}
	if _, err := j.cfg.CRDs.Peers().Get(ctx, j.cfg.Namespace, t.Environment); err == nil {
		return t.Environment, "", fmt.Errorf("environment %q is already paired here; unpair first (agentctl unpair %s)", t.Environment, t.Environment)
	} else if !apierrors.IsNotFound(err) {
		return t.Environment, "", fmt.Errorf("failed to check for an existing Peer: %w", err)
	}
	joined, err := Join(ctx, t, &peerv1.AgentIdentity{
		Environment: self, CaBundle: j.cfg.Self.Bundle(), Endpoints: j.cfg.Self.Endpoints(), Version: j.cfg.Version,
	}, JoinOptions{Timeout: j.cfg.Timeout, Now: j.cfg.Now})
	if err != nil {
		return t.Environment, "", err
	}
	endpoints := append([]string{joined.Endpoint}, slices.DeleteFunc(slices.Clone(t.Endpoints), func(e string) bool { return e == joined.Endpoint })...)
	peer := NewPeer(j.cfg.Namespace, t.Environment, pemutil.EncodeBundle(joined.CAs), endpoints, true, "token "+t.ID)
	if _, err := j.cfg.CRDs.Peers().Create(ctx, peer); err != nil {
		return t.Environment, "", fmt.Errorf("the acceptor paired, but creating Peer %s here failed (unpair on the acceptor, then pair again): %w", t.Environment, err)
	}
	return t.Environment, fmt.Sprintf("paired with environment %s (agent %s) through %s", t.Environment, joined.Acceptor.GetVersion(), joined.Endpoint), nil
}
