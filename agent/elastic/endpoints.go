package elastic

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Target names an Elasticsearch resource managed by ECK.
type Target struct {
	Namespace string
	Name      string
}

// String renders "namespace/name".
func (t Target) String() string { return t.Namespace + "/" + t.Name }

// Validate checks that both parts are DNS-1123 labels, as the names of the
// Services ECK derives from them must be.
func (t Target) Validate() error {
	if t.Namespace == "" || t.Name == "" {
		return fmt.Errorf("target %q must be namespace/name", t.String())
	}
	if errs := validation.IsDNS1123Label(t.Namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q is not valid: %s", t.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(t.Name); len(errs) > 0 {
		return fmt.Errorf("name %q is not valid: %s", t.Name, strings.Join(errs, "; "))
	}
	return nil
}

// ParseTarget parses "namespace/name".
func ParseTarget(s string) (Target, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(name, "/") {
		return Target{}, fmt.Errorf("target %q must be namespace/name", s)
	}
	t := Target{Namespace: ns, Name: name}
	if err := t.Validate(); err != nil {
		return Target{}, err
	}
	return t, nil
}

// ParseEndpoints parses endpoint overrides, each "namespace/name=URL", e.g.
// "data/logs=https://127.0.0.5:9200". Overrides are for agents running
// outside the Kubernetes cluster, where the Service DNS name does not
// resolve; the TLS server name stays "<name>-es-http.<namespace>.svc". The
// error names the bad entry (with any user info in its URL redacted).
func ParseEndpoints(entries []string) (map[Target]string, error) {
	out := make(map[Target]string, len(entries))
	for _, e := range entries {
		t, u, err := parseEndpoint(e)
		if err != nil {
			return nil, fmt.Errorf("invalid endpoint override %q: %w", redactEntry(e), err)
		}
		if _, dup := out[t]; dup {
			return nil, fmt.Errorf("invalid endpoint override %q: %s is given more than once", redactEntry(e), t)
		}
		out[t] = u
	}
	return out, nil
}

func parseEndpoint(e string) (Target, string, error) {
	lhs, rhs, ok := strings.Cut(strings.TrimSpace(e), "=")
	if !ok {
		return Target{}, "", errors.New("must be namespace/name=URL")
	}
	t, err := ParseTarget(strings.TrimSpace(lhs))
	if err != nil {
		return Target{}, "", err
	}
	raw := strings.TrimSpace(rhs)
	if err := validateURL(raw); err != nil {
		return Target{}, "", err
	}
	return t, strings.TrimSuffix(raw, "/"), nil
}

// redactEntry hides a password in the URL part of an entry.
func redactEntry(e string) string {
	lhs, rhs, ok := strings.Cut(e, "=")
	if !ok {
		return e
	}
	if u, err := url.Parse(strings.TrimSpace(rhs)); err == nil {
		if u.User != nil {
			u.User = url.User("REDACTED")
			return lhs + "=" + u.String()
		}
		return e
	}
	if strings.Contains(rhs, "@") {
		return lhs + "=<unparsable URL>"
	}
	return e
}
