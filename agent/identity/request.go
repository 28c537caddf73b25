package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/rotation"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// A rotation on request (`agentctl rotate identity`) goes through the same steps as a scheduled
// one, at once: stage a new CA and announce it, promote it as soon as every peer acknowledged it,
// and with retire-old, drop the old CA once every peer acknowledged the promoted bundle and the
// streams moved to leaves of the new CA. The request and the agent's report are annotations of
// the public ConfigMap ecklink-agent-identity: asking needs neither the CA's key nor the Secret.
const (
	// AnnotationRotateRequest is the request's id; a new id is a new request (agentctl writes
	// the time of the request).
	AnnotationRotateRequest = "ecklink.io/rotate-request"
	// AnnotationRotateRetireOld "true" retires the old CA once peers trust the new one, instead
	// of one leaf lifetime after the promotion.
	AnnotationRotateRetireOld = "ecklink.io/rotate-retire-old"
	// AnnotationRotateStatus is the agent's report on the last request, a RotationStatus in JSON.
	AnnotationRotateStatus = "ecklink.io/rotate-status"

	// maxRequestID bounds the request id the agent accepts.
	maxRequestID = 64
)

// Phases of a requested rotation, in order.
const (
	// RotationStaged: the new CA is announced; it signs once every peer acknowledged it.
	RotationStaged = rotation.Staged
	// RotationPromoted: the new CA signs; with retire-old, the old one leaves the bundle once
	// every peer acknowledged the promotion and the streams moved to leaves of the new CA.
	RotationPromoted = "Promoted"
	// RotationRetiring: the old CA left this agent's bundle; waiting for every peer to drop it.
	RotationRetiring = "Retiring"
	// RotationDone: the new CA signs (and with retire-old, no peer trusts the old one).
	RotationDone = rotation.Done
	// RotationFailed: the request is invalid; the message says why.
	RotationFailed = rotation.Failed
)

// RotationStatus is the agent's report on a rotation request. It holds fingerprints and peer
// names only.
type RotationStatus = rotation.Status

// ReadRotation returns the rotation request held in cm's annotations (id "" if none) and the
// agent's status (zero if none, or if it does not parse).
func ReadRotation(cm *corev1.ConfigMap) (id string, retireOld bool, status RotationStatus) {
	a := cm.GetAnnotations()
	return a[AnnotationRotateRequest], a[AnnotationRotateRetireOld] == "true", rotation.ReadStatus(a, AnnotationRotateStatus)
}

// RotationGates are what a requested rotation waits for; the trust exchange provides them.
type RotationGates struct {
	// Trusted reports whether every peer acknowledged the current bundle, and names the others.
	Trusted func() (bool, []string)
	// Moved reports whether every live stream uses a leaf of the active CA on this agent's
	// side, and names the peers whose stream does not.
	Moved func() (bool, []string)
}

// SetRotationGates installs the gates of requested rotations; without them, nothing is waited
// for.
func (i *Identity) SetRotationGates(g RotationGates) {
	i.mu.Lock()
	i.gates = g
	i.mu.Unlock()
	i.poke()
}

// watchRequests keeps an informer on the identity ConfigMap, which wakes Run when it changes.
func (i *Identity) watchRequests(ctx context.Context) error {
	inf := coreinformers.NewFilteredConfigMapInformer(i.cfg.Client, i.cfg.Namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + ConfigMapName })
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { i.poke() },
		UpdateFunc: func(any, any) { i.poke() },
	}); err != nil {
		return fmt.Errorf("failed to watch configmap %s/%s: %w", i.cfg.Namespace, ConfigMapName, err)
	}
	i.mu.Lock()
	i.requests = inf.GetStore()
	i.mu.Unlock()
	go inf.Run(ctx.Done())
	return nil
}

// identityConfigMap reads the ConfigMap from the informer, or from the API before it runs.
func (i *Identity) identityConfigMap(ctx context.Context) (*corev1.ConfigMap, error) {
	i.mu.RLock()
	store := i.requests
	i.mu.RUnlock()
	if store != nil {
		obj, ok, err := store.GetByKey(i.cfg.Namespace + "/" + ConfigMapName)
		if err == nil && ok {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				return cm, nil
			}
		}
	}
	cm, err := i.cfg.Client.CoreV1().ConfigMaps(i.cfg.Namespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get configmap %s/%s: %w", i.cfg.Namespace, ConfigMapName, err)
	}
	return cm, nil
}

// advanceRequest takes the pending rotation request one step further and reports it. It
// returns when to look again: soon while a request is pending, zero otherwise.
func (i *Identity) advanceRequest(ctx context.Context, now time.Time) (time.Time, error) {
	cm, err := i.identityConfigMap(ctx)
	if err != nil || cm == nil {
		return time.Time{}, err
	}
	id, retireOld, st := ReadRotation(cm)
	// The informer may not show the last report yet.
	if i.reported.Request == id {
		st = i.reported
	}
	if !st.Pending(id) {
		return time.Time{}, nil
	}
	before := st
	if st.Request != id {
		i.retireWait = time.Time{}
		st = RotationStatus{Request: id, OldCA: pemutil.Fingerprint(i.activeCA())}
		i.log.Info("agent CA rotation requested", "request", clip(id), "retire_old", retireOld)
	}
	st.RetireOld = retireOld
	if err := validateRequestID(id); err != nil {
		st.Phase, st.Message = RotationFailed, err.Error()
	} else if err := i.stepRequest(ctx, &st, now); err != nil {
		return now, err
	}
	if st.Phase != before.Phase || st.Message != before.Message || st.NewCA != before.NewCA || st.Request != before.Request {
		st.Updated = now.UTC().Truncate(time.Second)
		if err := i.writeStatus(ctx, st); err != nil {
			return now, err
		}
		i.reported = st
		if st.Phase != before.Phase || st.Request != before.Request {
			i.log.Info("agent CA rotation", "request", clip(id), "phase", st.Phase, "message", st.Message)
		}
	}
	if st.Finished() {
		return time.Time{}, nil
	}
	return now.Add(i.cfg.RequestPoll), nil
}

// stepRequest performs the step the request is at and describes it in st.
func (i *Identity) stepRequest(ctx context.Context, st *RotationStatus, now time.Time) error {
	cur, err := i.current()
	if err != nil {
		return err
	}
	i.mu.RLock()
	gates := i.gates
	i.mu.RUnlock()
	trusted, untrusting := check(gates.Trusted)
	switch {
	case pemutil.Fingerprint(cur.active.cert) == st.OldCA:
		if cur.next == nil {
			if err := i.StageNextCA(ctx); err != nil {
				return err
			}
			if cur, err = i.current(); err != nil {
				return err
			}
		}
		st.Phase, st.NewCA = RotationStaged, pemutil.Fingerprint(cur.next.cert)
		st.Message = "the new CA is announced to the peers; it signs once every peer acknowledged it"
		if !trusted {
			st.Message += ": waiting for " + names(untrusting)
		}
	case cur.previous != nil && pemutil.Fingerprint(cur.previous) == st.OldCA:
		st.Phase, st.NewCA = RotationPromoted, pemutil.Fingerprint(cur.active.cert)
		if !st.RetireOld {
			st.Phase = RotationDone
			st.Message = fmt.Sprintf("the new CA signs; the old one stays trusted until %s", i.previousRetireAt(cur).UTC().Format(time.RFC3339))
			return nil
		}
		return i.retireOld(ctx, st, now, trusted, untrusting, gates)
	default:
		// The old CA left the bundle: this agent no longer trusts leaves of it, peers drop it
		// once they acknowledged the bundle.
		st.NewCA = pemutil.Fingerprint(cur.active.cert)
		if !trusted {
			st.Phase, st.Message = RotationRetiring, "the old CA left this agent's bundle: waiting for "+names(untrusting)+" to drop it"
			return nil
		}
		st.Phase, st.Message = RotationDone, "the new CA signs and no peer trusts the old one any more"
	}
	return nil
}

// retireOld retires the old (previous) CA once every peer acknowledged the promotion and every
// stream moved to a leaf of the new CA. Peers of older versions do not reconnect on a promotion:
// after RetireGrace the old CA is retired anyway, and their streams end and reconnect.
func (i *Identity) retireOld(ctx context.Context, st *RotationStatus, now time.Time, trusted bool, untrusting []string, gates RotationGates) error {
	if !trusted {
		i.retireWait = time.Time{}
		st.Message = "the new CA signs; waiting for " + names(untrusting) + " to acknowledge it before the old one is retired"
		return nil
	}
	if i.retireWait.IsZero() {
		i.retireWait = now
	}
	moved, stale := check(gates.Moved)
	deadline := i.retireWait.Add(i.cfg.RetireGrace)
	if !moved && now.Before(deadline) {
		st.Message = fmt.Sprintf("the new CA signs; waiting for the streams with %s to move to it (until %s at most) before the old one is retired",
			names(stale), deadline.UTC().Format(time.RFC3339))
		return nil
	}
	if !moved {
		i.log.Warn("retiring the old agent CA while streams still use it: they end and reconnect", "peers", stale)
	}
	if err := i.RetirePrevious(ctx); err != nil {
		return err
	}
	st.Phase, st.Message = RotationRetiring, "the old CA left this agent's bundle: waiting for every peer to drop it"
	return nil
}

func check(gate func() (bool, []string)) (bool, []string) {
	if gate == nil {
		return true, nil
	}
	return gate()
}

// names lists peers for a status message, at most five.
func names(peers []string) string {
	switch n := len(peers); {
	case n == 0:
		return "the peers"
	case n > 5:
		return "peers " + strings.Join(peers[:5], ", ") + fmt.Sprintf(" and %d more", n-5)
	default:
		return "peers " + strings.Join(peers, ", ")
	}
}

func validateRequestID(id string) error {
	if len(id) > maxRequestID || strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("annotation %s: want at most %d printable characters without spaces", AnnotationRotateRequest, maxRequestID)
	}
	return nil
}

// clip bounds an annotation value for logs.
func clip(s string) string {
	if len(s) > maxRequestID {
		return s[:maxRequestID] + "..."
	}
	return s
}

// writeStatus records st in the ConfigMap's annotations.
func (i *Identity) writeStatus(ctx context.Context, st RotationStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("failed to encode rotation status: %w", err)
	}
	cms := i.cfg.Client.CoreV1().ConfigMaps(i.cfg.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		upd := cur.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[AnnotationRotateStatus] = string(b)
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to report rotation in configmap %s/%s: %w", i.cfg.Namespace, ConfigMapName, err)
	}
	return nil
}
