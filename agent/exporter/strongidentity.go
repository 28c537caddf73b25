package exporter

import (
	"fmt"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/peering"
	"github.com/ecklink/ecklink/agent/signing"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// Strong identity verification (Elasticsearch 9.3+) needs both clusters at 9.3 or later. An
// export that requires it refuses the links where a side is older, saying which, rather than run
// them without: a refusal also invalidates the link's keys. The flow itself is in signing.go.

// strongIdentityMode resolves whether a link of exp between the exported Elasticsearch (version
// exported) and the consumer's (as its import request reports it, with its signing CA and
// subject) uses strong identity: use, or else why it cannot ("" when the export does not ask for
// it).
func strongIdentityMode(exp *v1alpha1.ClusterExport, exported string, req *peerv1.ImportRequest) (use bool, why string) {
	switch exp.Spec.StrongIdentity {
	case v1alpha1.StrongIdentityRequired, v1alpha1.StrongIdentityPreferred:
	default:
		return false, ""
	}
	for _, side := range []struct{ name, version string }{{"the exported", exported}, {"the consuming", req.GetElasticsearchVersion()}} {
		ok, err := supportsStrongIdentity(side.version)
		switch {
		case err != nil:
			return false, fmt.Sprintf("the version of %s Elasticsearch is unknown (%v); it needs 9.3 or later", side.name, err)
		case !ok:
			return false, fmt.Sprintf("%s Elasticsearch runs %s, it needs 9.3 or later on both sides", side.name, side.version)
		}
	}
	if len(req.GetSigningCaBundle()) == 0 || req.GetSigningSubject() == "" {
		return false, "the consuming agent sent no signing CA or subject (it predates strong identity verification); upgrade it"
	}
	return true, ""
}

// strongIdentityRefusal returns the refusal of a link of an export that requires strong identity
// when the link cannot use it, nil when the link may go ahead.
func strongIdentityRefusal(exp *v1alpha1.ClusterExport, exported string, req *peerv1.ImportRequest) *peering.RefusalError {
	use, why := strongIdentityMode(exp, exported, req)
	if use || exp.Spec.StrongIdentity != v1alpha1.StrongIdentityRequired {
		return nil
	}
	return &peering.RefusalError{Reason: v1alpha1.ReasonStrongIdentityUnavailable,
		Message: "export " + exp.Name + " requires strong identity verification: " + why}
}

// supportsStrongIdentity reports whether Elasticsearch version v has strong identity verification.
func supportsStrongIdentity(v string) (bool, error) { return signing.Supported(v) }
