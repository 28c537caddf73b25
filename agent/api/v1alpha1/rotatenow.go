package v1alpha1

import (
	"fmt"
	"regexp"

	"github.com/ecklink/ecklink/internal/peertext"
)

// Rotate now (agentctl rotate key): the operator asks for a new API key of one link by
// annotating its RemoteCluster; the local agent carries the request to the peer in the import
// request, the peer makes the key (rate limited on its side) and says which request the key
// answers, and status.apiKey.rotationRequest shows it once the key is in effect.
const (
	// AnnotationRotateKeyRequest is the id of a request to rotate the RemoteCluster's API key
	// now; a new id is a new request (agentctl writes the time).
	AnnotationRotateKeyRequest = "ecklink.io/rotate-key-request"
	// AnnotationRotateKeyInvalidateOld "true" asks the peer to invalidate the old key as soon as
	// the new one exists, not once the new one is in use: the link is disconnected until the new
	// key is in effect (a leaked key in an emergency).
	AnnotationRotateKeyInvalidateOld = "ecklink.io/rotate-key-invalidate-old-now"
)

// MaxRotationRequest bounds a rotation request id.
const MaxRotationRequest = 64

var rotationRequest = regexp.MustCompile(`^[A-Za-z0-9._:+-]{1,64}$`)

// ValidRotationRequest checks a rotation request id ("" is no request): at most 64 characters of
// [A-Za-z0-9._:+-]. field names where it came from in the error. Both agents check what they
// receive from the other with it.
func ValidRotationRequest(field, id string) error {
	if id == "" || rotationRequest.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%s %q: want at most %d characters of [A-Za-z0-9._:+-]", field, peertext.Clean(id, MaxRotationRequest), MaxRotationRequest)
}
