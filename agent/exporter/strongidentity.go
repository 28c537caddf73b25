package exporter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
)

// Strong identity verification (Elasticsearch 9.3+) needs both clusters at 9.3 or later. This
// agent version does not set it up yet, so an export that requires it refuses its links, saying
// why, rather than run them without: a refusal also invalidates the link's keys.

// strongIdentityRefusal returns the refusal for a link of exp between the exported Elasticsearch
// (version exported) and the consumer's (version local, as its import request reports it), nil
// when the link may go ahead.
func strongIdentityRefusal(exp *v1alpha1.ClusterExport, exported, local string) *refusal {
	if exp.Spec.StrongIdentity != v1alpha1.StrongIdentityRequired {
		return nil
	}
	refuse := func(format string, args ...any) *refusal {
		return &refusal{reason: v1alpha1.ReasonStrongIdentityUnavailable,
			message: "export " + exp.Name + " requires strong identity verification: " + fmt.Sprintf(format, args...)}
	}
	for _, side := range []struct{ name, version string }{{"the exported", exported}, {"the consuming", local}} {
		ok, err := supportsStrongIdentity(side.version)
		switch {
		case err != nil:
			return refuse("the version of %s Elasticsearch is unknown (%v); it needs 9.3 or later", side.name, err)
		case !ok:
			return refuse("%s Elasticsearch runs %s, it needs 9.3 or later on both sides", side.name, side.version)
		}
	}
	return refuse("this agent version cannot set it up yet; set spec.strongIdentity to Disabled or upgrade the agent")
}

// supportsStrongIdentity reports whether Elasticsearch version v (MAJOR.MINOR.PATCH[-suffix]) has
// strong identity verification.
func supportsStrongIdentity(v string) (bool, error) {
	core, _, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false, fmt.Errorf("failed to parse version %q", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("failed to parse version %q", v)
	}
	return major > 9 || major == 9 && minor >= 3, nil
}
