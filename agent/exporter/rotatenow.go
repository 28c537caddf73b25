package exporter

import (
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ecklink/ecklink/agent/elastic"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Rotate now (agentctl rotate key): the consumer's import request carries an opaque request id
// (ImportRequest.key_rotation_request). The link's newest key records in its metadata the request
// it was made for, so the decision survives restarts and leader changes: a request id that differs
// from the newest key's is a request not answered yet. This side decides when to answer it: at
// most once per link per RotateNowInterval, counted from the creation of the newest live key made
// on request, so a peer cannot churn keys (a deferred request is answered when the window ends).

// DefaultRotateNowInterval is the least time between two key rotations of one link made on the
// peer's request.
const DefaultRotateNowInterval = 5 * time.Minute

// rotation is the decision on a link's rotation request.
type rotation struct {
	request string
	// due: the newest key does not answer the request and the window allows a new key now.
	due bool
	// wait is how long until a deferred request may be answered (0 when not deferred).
	wait time.Duration
	// emergency: the request asks the old keys to go at once; a key made for it records that.
	emergency bool
}

// rotationFor decides on the rotation request of req against the link's live keys (oldest first).
func (e *Exporter) rotationFor(req *peerv1.ImportRequest, keys []elastic.Key, now time.Time) rotation {
	r := rotation{request: req.GetKeyRotationRequest()}
	if r.request == "" || len(keys) == 0 {
		return r
	}
	newest := keys[len(keys)-1]
	if parseKeyMetadata(newest.Metadata).RotationRequest == r.request {
		return r
	}
	r.emergency = req.GetKeyRotationInvalidateOld()
	var last time.Time
	for _, k := range keys {
		if parseKeyMetadata(k.Metadata).RotationRequest != "" && k.Creation.After(last) {
			last = k.Creation
		}
	}
	if elapsed := now.Sub(last); !last.IsZero() && elapsed < e.cfg.RotateNowInterval {
		r.wait = e.cfg.RotateNowInterval - elapsed
		return r
	}
	r.due = true
	return r
}

// madeForEmergency reports whether k was made for the emergency request id: the pass that
// made it, or any later pass while it is the newest key, invalidates the link's other keys.
func madeForEmergency(k elastic.Key, id string) bool {
	m := parseKeyMetadata(k.Metadata)
	return id != "" && m.RotationRequest == id && m.RotationEmergency
}

// event records an Event about obj, when the exporter has a recorder (unit tests run without).
func (e *Exporter) event(obj runtime.Object, eventType, reason, message string) {
	if e.cfg.Recorder != nil {
		e.cfg.Recorder.Event(obj, eventType, reason, message)
	}
}
