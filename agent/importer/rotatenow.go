package importer

import (
	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// rotationRequest reads a RemoteCluster's request to rotate its API key now (agentctl rotate
// key): the request id and whether the old key goes at once. A malformed id is not sent (the
// peer would refuse the whole import request); the agent logs it instead. Only the API-key model
// asks (apiKeyModel.request): the certificate model has no key to rotate.
func (im *Importer) rotationRequest(rc *v1alpha1.RemoteCluster) (string, bool) {
	a := rc.GetAnnotations()
	id := a[v1alpha1.AnnotationRotateKeyRequest]
	if id == "" {
		return "", false
	}
	if err := v1alpha1.ValidRotationRequest("annotation "+v1alpha1.AnnotationRotateKeyRequest, id); err != nil {
		im.log.Warn("key rotation request ignored", "remote_cluster", rc.Namespace+"/"+rc.Name, "error", err)
		return "", false
	}
	return id, a[v1alpha1.AnnotationRotateKeyInvalidateOld] == "true"
}
