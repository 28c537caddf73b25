package importer

import (
	"github.com/ecklink/ecklink/agent/api/v1alpha1"
	"github.com/ecklink/ecklink/agent/elastic"
)

// applyFailure is the condition reason of a failed apply: ElasticsearchUnavailable when the local
// Elasticsearch did not answer or answered 408/429/5xx, ElasticsearchUserPending while the
// agent's own user is not provisioned or not loaded, ElasticsearchForbidden when a privilege is
// missing (the agent retries, and the message names the error), ApplyFailed for anything else.
func applyFailure(err error) string {
	switch {
	case elastic.Unavailable(err):
		return v1alpha1.ReasonElasticsearchUnavailable
	case elastic.UserNotReady(err):
		return v1alpha1.ReasonElasticsearchUserPending
	case elastic.IsForbidden(err):
		return v1alpha1.ReasonElasticsearchForbidden
	}
	return v1alpha1.ReasonApplyFailed
}
