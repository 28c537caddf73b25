package importer

import (
	"errors"
	"strings"
	"testing"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/link"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// TestRotationRequestGoesToThePeer: the RemoteCluster's rotate-key annotations go to the peer in
// the import request; a malformed id, or a link of the certificate model, sends none.
func TestRotationRequestGoesToThePeer(t *testing.T) {
	with := func(alias string, model v1alpha1.SecurityModel, id, invalidateOld string) *v1alpha1.RemoteCluster {
		rc := remoteCluster(alias, model)
		rc.Annotations = map[string]string{v1alpha1.AnnotationRotateKeyRequest: id, v1alpha1.AnnotationRotateKeyInvalidateOld: invalidateOld}
		return rc
	}
	f := newFixture(t,
		with("plain", "", "2030-01-01T12:00:00Z", ""),
		with("emergency", "", "2030-01-01T12:00:01Z", "true"),
		with("malformed", "", "not a valid id", "true"),
		with("certs", v1alpha1.SecurityModelCertificate, "2030-01-01T12:00:02Z", ""),
		remoteCluster("none", ""))
	f.reconcile(t)
	for _, tc := range []struct {
		alias         string
		id            string
		invalidateOld bool
	}{
		{"plain", "2030-01-01T12:00:00Z", false},
		{"emergency", "2030-01-01T12:00:01Z", true},
		{"malformed", "", false},
		{"certs", "", false},
		{"none", "", false},
	} {
		id := link.ID{Namespace: fxNS, Elasticsearch: fxES, Alias: tc.alias}
		req, ok := f.outbox.get(link.Resource(link.KindImport, id)).(*peerv1.ImportRequest)
		if !ok {
			t.Errorf("%s: no import request", tc.alias)
			continue
		}
		if req.GetKeyRotationRequest() != tc.id || req.GetKeyRotationInvalidateOld() != tc.invalidateOld {
			t.Errorf("%s: request %q invalidate-old %v, want %q %v", tc.alias, req.GetKeyRotationRequest(), req.GetKeyRotationInvalidateOld(), tc.id, tc.invalidateOld)
		}
	}
}

// TestRotationEchoValidated: the request id a peer echoes in its credentials is bounded and
// checked on receipt (InvalidCredentials, naming the field).
func TestRotationEchoValidated(t *testing.T) {
	for _, tc := range []struct {
		echo string
		ok   bool
	}{
		{"", true},
		{"2030-01-01T12:00:00.5Z", true},
		{strings.Repeat("x", 65), false},
		{"<script>", false},
	} {
		err := validateText(&peerv1.Credentials{KeyRotationRequest: tc.echo})
		var nack *peering.RefusalError
		switch {
		case tc.ok && err != nil:
			t.Errorf("echo %q refused: %v", tc.echo, err)
		case !tc.ok && (!errors.As(err, &nack) || nack.Reason != "InvalidCredentials" || !strings.Contains(nack.Message, "key_rotation_request")):
			t.Errorf("echo %q: %v, want InvalidCredentials naming key_rotation_request", tc.echo, err)
		}
	}
}
