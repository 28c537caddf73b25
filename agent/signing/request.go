package signing

import "github.com/ecklink/ecklink/agent/rotation"

// A rotation of the signing CA on request (agentctl rotate signing) goes through the steps of a
// scheduled one, at once: stage a new CA and send its bundle to the peers with the import
// requests, promote it as soon as every peer's Elasticsearch trusts it, and reissue the signing
// certificates from it. The request and the agent's report are annotations of the agent's public
// ConfigMap ecklink-agent-identity, as for `agentctl rotate identity`: asking needs neither the
// CA's key nor its Secret.
const (
	// AnnotationRotateRequest is the request's id; a new id is a new request (agentctl writes
	// the time of the request).
	AnnotationRotateRequest = "ecklink.io/rotate-signing-request"
	// AnnotationRotateStatus is the agent's report on the last request, a RotationStatus in JSON.
	AnnotationRotateStatus = "ecklink.io/rotate-signing-status"
)

// Phases of a signing CA rotation on request.
const (
	// RotationStaged: the new CA is sent to the peers; it signs once they all trust it.
	RotationStaged = rotation.Staged
	// RotationDone: the new CA signs and the signing certificates are reissued from it.
	RotationDone = rotation.Done
	// RotationFailed: the request cannot be taken up; the message says why.
	RotationFailed = rotation.Failed
)

// RotationStatus is the agent's report on a signing CA rotation request: fingerprints only.
type RotationStatus = rotation.Status
