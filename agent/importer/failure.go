package importer

import (
	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
)

// applyFailure is the condition reason of a failed apply: ElasticsearchUnavailable when the local
// Elasticsearch did not answer or answered 408/429/5xx (the agent retries, and the message names
// the error), ApplyFailed for anything else.
func applyFailure(err error) string {
	if elastic.Unavailable(err) {
		return v1alpha1.ReasonElasticsearchUnavailable
	}
	return v1alpha1.ReasonApplyFailed
}
