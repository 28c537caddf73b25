package exporter

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/kube"
	"github.com/ecklink/ecklink/agent/license"
	"github.com/ecklink/ecklink/agent/link"
)

// keyHealth remembers, per link, why managing its API keys last failed in the exported
// Elasticsearch, so that the export's status names the Elasticsearch problem while the agent
// retries.
type keyHealth struct {
	mu   sync.Mutex
	errs map[healthKey]keyFailure
}

type healthKey struct {
	peer string
	link link.ID
}

type keyFailure struct {
	export  string // namespace/name
	reason  string
	message string
}

// noteResult records the outcome of a link's reconcile and refreshes the export's status when
// the link starts or stops failing.
func (e *Exporter) noteResult(it item, err error) {
	if it.kind != "link" && it.kind != "ca" {
		return
	}
	e.mu.Lock()
	export := ""
	if st, ok := e.links[it.peer][it.link]; ok && st.req != nil {
		export = st.req.GetExportNamespace() + "/" + st.req.GetExportName()
	}
	e.mu.Unlock()
	k := healthKey{peer: it.peer, link: it.link}
	h := &e.health
	h.mu.Lock()
	old, had := h.errs[k]
	var now keyFailure
	failing := false
	if reason := keyFailureReason(err); reason != "" && export != "" {
		now, failing = keyFailure{export: export, reason: reason, message: err.Error()}, true
		if h.errs == nil {
			h.errs = map[healthKey]keyFailure{}
		}
		h.errs[k] = now
	} else {
		delete(h.errs, k)
	}
	h.mu.Unlock()
	changed := had != failing || (failing && old.reason != now.reason)
	if !changed {
		return
	}
	for _, ref := range []string{old.export, now.export, export} {
		if ns, name, ok := strings.Cut(ref, "/"); ok {
			e.queue.Add(item{kind: "export", ns: ns, name: name})
		}
	}
}

// keyFailureReason classifies an error of the exported Elasticsearch; "" for anything else.
func keyFailureReason(err error) string {
	var ae *elastic.APIError
	switch {
	case err == nil:
		return ""
	case elastic.Unavailable(err):
		return v1alpha1.ReasonElasticsearchUnavailable
	case elastic.UserNotReady(err):
		return v1alpha1.ReasonElasticsearchUserPending
	case license.NonCompliant(err.Error()):
		// Creating or updating a cross-cluster key with a license below enterprise (a link
		// that holds a key keeps it, license.go): the message names the feature.
		return v1alpha1.ReasonLicenseInsufficient
	case elastic.IsForbidden(err):
		return v1alpha1.ReasonElasticsearchForbidden
	case errors.As(err, &ae):
		return v1alpha1.ReasonAPIKeyFailed
	}
	return ""
}

// linkFailure returns why managing the keys of a link failed last, or "".
func (e *Exporter) linkFailure(peer string, id link.ID) string {
	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	return e.health.errs[healthKey{peer: peer, link: id}].message
}

// keysCondition is the export's KeysManaged condition: False, naming the Elasticsearch problem,
// while managing the keys of one of its links fails.
func (e *Exporter) keysCondition(exp *v1alpha1.ClusterExport) metav1.Condition {
	ref := exp.Namespace + "/" + exp.Name
	e.health.mu.Lock()
	var failing []string
	reason := ""
	for k, f := range e.health.errs {
		if f.export != ref {
			continue
		}
		failing = append(failing, fmt.Sprintf("link %s of %s: %s", k.link, k.peer, f.message))
		if reason == "" || f.reason == v1alpha1.ReasonElasticsearchUnavailable {
			reason = f.reason
		}
	}
	e.health.mu.Unlock()
	if len(failing) == 0 {
		return kube.NewCondition(exp, v1alpha1.ConditionKeysManaged, metav1.ConditionTrue, v1alpha1.ReasonApplied,
			"no failure managing the API keys of this export's links in Elasticsearch "+exp.Spec.ElasticsearchRef.Name)
	}
	sort.Strings(failing)
	msg := failing[0]
	if len(failing) > 1 {
		msg = fmt.Sprintf("%s (and %d more links failing)", msg, len(failing)-1)
	}
	return kube.NewCondition(exp, v1alpha1.ConditionKeysManaged, metav1.ConditionFalse, reason, msg+"; the agent retries")
}
