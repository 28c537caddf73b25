package importer

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/identity"
	"github.com/ecklink/ecklink/agent/signing"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// signingRotationRequest is a rotation request of the signing CA (agentctl rotate signing) and the
// agent's last report on it.
type signingRotationRequest struct {
	id     string
	status signing.RotationStatus
}

// signingRequestTakeUp reads a rotation request of the signing CA that the agent has not
// finished, from the annotations of the agent's identity ConfigMap (one read per signing tick).
// An invalid request, or one made before the agent has a signing CA, is reported Failed and not
// taken up. Callers hold im.signer.mu.
func (im *Importer) signingRequestTakeUp(ctx context.Context) (signingRotationRequest, error) {
	cm, err := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace).Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return signingRotationRequest{}, nil
	}
	if err != nil {
		return signingRotationRequest{}, fmt.Errorf("failed to read the signing CA rotation request: %w", err)
	}
	var r signingRotationRequest
	r.id = cm.Annotations[signing.AnnotationRotateRequest]
	_ = json.Unmarshal([]byte(cm.Annotations[signing.AnnotationRotateStatus]), &r.status)
	if r.id == "" || r.status.Request == r.id && r.status.Finished() {
		return signingRotationRequest{}, nil
	}
	fail := func(msg string) (signingRotationRequest, error) {
		return signingRotationRequest{}, im.writeSigningStatus(ctx, signing.RotationStatus{Request: r.id, Phase: signing.RotationFailed, Message: msg})
	}
	if err := v1alpha1.ValidRotationRequest("annotation "+signing.AnnotationRotateRequest, r.id); err != nil {
		return fail(err.Error())
	}
	if im.signer.auth == nil {
		if _, err := im.cfg.Kube.CoreV1().Secrets(im.cfg.AgentNamespace).Get(ctx, SigningCASecretName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return fail("this agent has no signing CA: it makes one for the first link of a local Elasticsearch 9.3+ (strong identity)")
		}
		if _, err := im.authority(ctx); err != nil {
			return signingRotationRequest{}, err
		}
	}
	return r, nil
}

// reportSigningRotation writes the progress of request r: Staged while the new CA waits for every
// peer to trust it, Done once it signs. Callers hold im.signer.mu.
func (im *Importer) reportSigningRotation(ctx context.Context, r signingRotationRequest, a *signing.Authority) error {
	if r.id == "" {
		return nil
	}
	st := signing.RotationStatus{Request: r.id, OldCA: r.status.OldCA, NewCA: r.status.NewCA}
	if r.status.Request != r.id {
		st.OldCA = pemutil.Fingerprint(a.ActiveCA())
	}
	switch {
	case a.Done() == r.id:
		st.Phase, st.NewCA = signing.RotationDone, pemutil.Fingerprint(a.ActiveCA())
		st.Message = "the new signing CA signs; the signing certificates of the local Elasticsearch clusters are reissued from it"
	default:
		st.Phase = signing.RotationStaged
		if staged := a.StagedCA(); staged != nil {
			st.NewCA = pemutil.Fingerprint(staged)
		}
		st.Message = "the new signing CA is sent to the peers; it signs once every peer's Elasticsearch trusts it (after the peer's signing sync delay, 90 s by default)"
	}
	if st.Phase == r.status.Phase && st.NewCA == r.status.NewCA && st.Message == r.status.Message {
		return nil
	}
	if st.Phase == signing.RotationDone {
		im.log.Info("signing CA rotated on request", "request", r.id, "active", st.NewCA, "previous", st.OldCA)
	}
	return im.writeSigningStatus(ctx, st)
}

// writeSigningStatus records st in the identity ConfigMap's annotations.
func (im *Importer) writeSigningStatus(ctx context.Context, st signing.RotationStatus) error {
	st.Updated = im.cfg.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cms := im.cfg.Kube.CoreV1().ConfigMaps(im.cfg.AgentNamespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, identity.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		upd := cm.DeepCopy()
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[signing.AnnotationRotateStatus] = string(b)
		_, err = cms.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to report on the signing CA rotation in ConfigMap %s: %w", identity.ConfigMapName, err)
	}
	return nil
}
