// Package link names remote cluster links the same way on both sides: a link is one alias of one
// local Elasticsearch, and everything exchanged about it (import request, credentials, status)
// and everything created for it (the API key on the remote) is keyed by its ID.
package link

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

// ID identifies a link: the local Elasticsearch (namespace and name) and the alias.
type ID struct {
	Namespace     string
	Elasticsearch string
	Alias         string
}

var (
	// alias is what ES accepts in cluster.remote.<alias> ([-\w]+), limited as the CRD does.
	alias = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`)
)

// Validate checks each part and names the bad one.
func (id ID) Validate() error {
	switch {
	case len(validation.IsDNS1123Label(id.Namespace)) > 0:
		return fmt.Errorf("link namespace %q is not a namespace name", id.Namespace)
	case len(validation.IsDNS1123Subdomain(id.Elasticsearch)) > 0:
		return fmt.Errorf("link elasticsearch %q is not a resource name", id.Elasticsearch)
	case !alias.MatchString(id.Alias):
		return fmt.Errorf("link alias %q: want letters, digits, '-' and '_', starting with a letter or digit, at most 63", id.Alias)
	}
	return nil
}

// String is "namespace/elasticsearch/alias".
func (id ID) String() string { return id.Namespace + "/" + id.Elasticsearch + "/" + id.Alias }

// Parse reads "namespace/elasticsearch/alias".
func Parse(s string) (ID, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return ID{}, fmt.Errorf("invalid link %q: want namespace/elasticsearch/alias", s)
	}
	id := ID{Namespace: parts[0], Elasticsearch: parts[1], Alias: parts[2]}
	return id, id.Validate()
}

// FromProto reads and validates a link from the stream.
func FromProto(l *peerv1.Link) (ID, error) {
	if l == nil {
		return ID{}, fmt.Errorf("link is missing")
	}
	id := ID{Namespace: l.GetLocalNamespace(), Elasticsearch: l.GetLocalElasticsearch(), Alias: l.GetAlias()}
	return id, id.Validate()
}

// Proto is the stream form.
func (id ID) Proto() *peerv1.Link {
	return &peerv1.Link{LocalNamespace: id.Namespace, LocalElasticsearch: id.Elasticsearch, Alias: id.Alias}
}

// Resource kinds exchanged on the stream.
const (
	KindImport      = "import"
	KindCredentials = "credentials"
	KindStatus      = "status"
)

// Resource is the stream resource key of a link for a kind, e.g. "import/apps/ccs/eu-logs".
func Resource(kind string, id ID) string { return kind + "/" + id.String() }

// ParseResource splits a resource key into its kind and link.
func ParseResource(key string) (string, ID, error) {
	kind, rest, ok := strings.Cut(key, "/")
	if !ok {
		return "", ID{}, fmt.Errorf("invalid resource %q: want kind/namespace/elasticsearch/alias", key)
	}
	id, err := Parse(rest)
	return kind, id, err
}

// KeyName is the name of the cross-cluster API key the remote side creates for a link:
// "ecklink-<peer>-<namespace>-<elasticsearch>-<alias>".
func KeyName(peer string, id ID) string {
	return "ecklink-" + peer + "-" + id.Namespace + "-" + id.Elasticsearch + "-" + id.Alias
}
