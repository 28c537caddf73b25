package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/rotation"
	"github.com/ecklink/ecklink/agent/signing"
)

// rotate identity and rotate signing ask the agent for a CA rotation the same way: a request
// annotation of its identity ConfigMap, and a report (rotation.Status) in another one.

// caRotation is what tells the rotations of the agent CA and of the signing CA apart.
type caRotation struct {
	// ca names the CA in messages.
	ca string
	// statusKey is the annotation of the agent's report.
	statusKey string
	// refused names the request when the agent refuses it.
	refused string
	// waitHint is added to the progress line after a while when the agent has not taken the
	// request up.
	waitHint string
}

var (
	agentCARotation = caRotation{ca: "agent CA", statusKey: identity.AnnotationRotateStatus, refused: "rotation request",
		waitHint: " (is the agent running? it acts when it leads)"}
	signingCARotation = caRotation{ca: "signing CA", statusKey: signing.AnnotationRotateStatus, refused: "signing CA rotation request",
		waitHint: " (it does once a minute, when it leads: is the agent running?)"}
)

// caRotationRequest names a CA rotation request in the output of rotate identity and rotate
// signing.
type caRotationRequest struct {
	Environment string `json:"environment"`
	Request     string `json:"request"`
}

// caRotationReport is the agent's last report on a CA rotation request, as agentctl prints it.
type caRotationReport struct {
	Phase   string `json:"phase,omitempty"`
	Message string `json:"message,omitempty"`
	OldCA   string `json:"oldCA,omitempty"`
	NewCA   string `json:"newCA,omitempty"`
}

// printDone writes the text output of a rotation of r's CA of environment that is Done.
func (rep caRotationReport) printDone(w io.Writer, r caRotation, environment string) {
	fmt.Fprintf(w, "rotated the %s of %s: %s -> %s\n%s\n", r.ca, environment, short(rep.OldCA), short(rep.NewCA), rep.Message)
}

// requestCARotation applies request to a copy of e's identity ConfigMap, whose annotations are
// never nil, and writes it unless request returns false; it retries on conflicts.
func requestCARotation(ctx context.Context, e *env, request func(cm *corev1.ConfigMap) (update bool)) error {
	cms := e.kube.CoreV1().ConfigMaps(e.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s has no agent identity (ConfigMap %s/%s): is the agent installed in namespace %s and started?",
				e.label(), e.namespace, identity.ConfigMapName, e.namespace)
		}
		if err != nil {
			return err
		}
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		if !request(upd) {
			return nil
		}
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
}

// waitCARotation waits until the agent of e reports request Done, or refuses it, with its last
// report in rep.
func (g *globals) waitCARotation(ctx context.Context, e *env, r caRotation, request string, rep *caRotationReport) error {
	return g.poll(ctx, "the rotation of the "+r.ca, r.progress(e, request, rep))
}

// finishCARotation waits, when wait is set, until the agent of e reports req, a rotation of r's
// CA, Done, with its last report in rep; then it prints res, the command's output: in text,
// rep.printDone once Done and pending before.
func (g *globals) finishCARotation(ctx context.Context, e *env, r caRotation, wait bool, res any, req caRotationRequest,
	rep *caRotationReport, pending func(w io.Writer)) error {
	if wait {
		if err := g.waitCARotation(ctx, e, r, req.Request, rep); err != nil {
			return err
		}
	}
	return g.print(res, func(w io.Writer) error {
		if rep.Phase == rotation.Done {
			rep.printDone(w, r, req.Environment)
			return nil
		}
		pending(w)
		return nil
	})
}

// progress reads the agent's report on request, from e's identity ConfigMap, into rep: done once
// the rotation is Done, an error once it Failed.
func (r caRotation) progress(e *env, request string, rep *caRotationReport) func(context.Context) (bool, string, error) {
	start := time.Now()
	return func(ctx context.Context) (bool, string, error) {
		cm, err := e.kube.CoreV1().ConfigMaps(e.namespace).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		st := rotation.ReadStatus(cm.GetAnnotations(), r.statusKey)
		if st.Request != request {
			return false, "the agent has not taken the request up yet" + hint(start, r.waitHint), nil
		}
		*rep = caRotationReport{Phase: st.Phase, Message: st.Message, OldCA: st.OldCA, NewCA: st.NewCA}
		switch st.Phase {
		case rotation.Done:
			return true, "", nil
		case rotation.Failed:
			return false, "", fmt.Errorf("the agent refused the %s: %s", r.refused, st.Message)
		}
		return false, st.Phase + ": " + st.Message, nil
	}
}
