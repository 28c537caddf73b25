package elastic

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ecklink/ecklink/agent/eck"
)

// Names of what ECK creates for an Elasticsearch resource.
const (
	elasticUser         = "elastic"
	userSecretSuffix    = "-ecklink-user"
	caCertKey           = "ca.crt"
	defaultHTTPPort     = "9200"
	serviceDomainSuffix = ".svc"
)

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	// Kube reads ECK's Secrets. Required.
	Kube kubernetes.Interface
	// Endpoints overrides the URL of some targets (see ParseEndpoints).
	Endpoints map[Target]string
	// Logger is the parent logger; a null logger when nil.
	Logger hclog.Logger
	// NewTransport builds the HTTP transport from the TLS configuration the
	// resolver derived (CA from ECK's Secret, ECK's server name). Nil uses a
	// standard http.Transport; tests may wrap or replace it.
	NewTransport func(*tls.Config) http.RoundTripper
	// Cached, if set, looks ECK's Secrets up in an informer cache first; the resolver reads
	// the API server only for a Secret the cache does not hold. It keeps a live read per
	// Secret off every Elasticsearch call.
	Cached func(namespace, name string) (*corev1.Secret, bool)
	// UseElasticUser authenticates as ECK's elastic superuser (Secret
	// "<es>-es-elastic-user") instead of the agent's own user (Secret
	// "<es>-ecklink-user", provisioned by agent/esuser). Only for clusters
	// where the agent's user cannot be provisioned; it fails where
	// spec.auth.disableElasticUser is set.
	UseElasticUser bool
}

// UserSecretName is the Secret holding the agent's own Elasticsearch user of
// the Elasticsearch es: a kubernetes.io/basic-auth Secret (keys "username",
// "password", "roles") that ECK reads through spec.auth.fileRealm.
func UserSecretName(es string) string { return es + userSecretSuffix }

// ErrUserNotProvisioned means the agent's user Secret of an Elasticsearch does
// not exist yet (agent/esuser creates it once a link needs the cluster).
var ErrUserNotProvisioned = errors.New("the agent's Elasticsearch user is not provisioned yet")

// Resolver builds clients for Elasticsearch resources: the agent's own user
// from "<es>-ecklink-user" (or, with UseElasticUser, ECK's elastic user from
// "<es>-es-elastic-user") and the HTTP CA from ECK's
// "<es>-es-http-certs-public". It reads both Secrets on every Client call and
// builds a new client only when the user, the password, the CA or the URL
// changed, so changed credentials and rotated CAs are picked up on the next
// call. It is safe for concurrent use.
type Resolver struct {
	kube         kubernetes.Interface
	epMu         sync.RWMutex
	endpoints    map[Target]string
	log          hclog.Logger
	newTransport func(*tls.Config) http.RoundTripper
	cached       func(namespace, name string) (*corev1.Secret, bool)
	useElastic   bool

	mu    sync.Mutex
	cache map[Target]cachedClient
}

type cachedClient struct {
	version string // fingerprint of URL, password and CA
	client  *Client
}

// fingerprint hashes what a client is built from. Content rather than
// resourceVersion: it ignores metadata-only updates and does not depend on
// the API server (or a fake) maintaining resourceVersions.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		_, _ = fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewResolver validates cfg and returns a resolver.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Kube == nil {
		return nil, errors.New("failed to create resolver: Kube is required")
	}
	for t, u := range cfg.Endpoints {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("failed to create resolver: endpoint override: %w", err)
		}
		if err := validateURL(u); err != nil {
			return nil, fmt.Errorf("failed to create resolver: endpoint override for %s: %w", t, err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	eps := make(map[Target]string, len(cfg.Endpoints))
	for t, u := range cfg.Endpoints {
		eps[t] = strings.TrimSuffix(u, "/")
	}
	return &Resolver{
		kube:         cfg.Kube,
		endpoints:    eps,
		log:          cfg.Logger.Named("elasticsearch"),
		newTransport: cfg.NewTransport,
		cached:       cfg.Cached,
		useElastic:   cfg.UseElasticUser,
		cache:        map[Target]cachedClient{},
	}, nil
}

// URL returns the URL used for t: the override, else
// "https://<name>-es-http.<namespace>.svc:9200".
func (r *Resolver) URL(t Target) string {
	r.epMu.RLock()
	u, ok := r.endpoints[t]
	r.epMu.RUnlock()
	if ok {
		return u
	}
	return "https://" + ServerName(t) + ":" + defaultHTTPPort
}

// SetEndpoints replaces the endpoint overrides (e.g. after the config file changed); clients
// built for a changed URL are rebuilt on their next use.
func (r *Resolver) SetEndpoints(endpoints map[Target]string) error {
	eps := make(map[Target]string, len(endpoints))
	for t, u := range endpoints {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("invalid endpoint override: %w", err)
		}
		if err := validateURL(u); err != nil {
			return fmt.Errorf("invalid endpoint override for %s: %w", t, err)
		}
		eps[t] = strings.TrimSuffix(u, "/")
	}
	r.epMu.Lock()
	r.endpoints = eps
	r.epMu.Unlock()
	return nil
}

// ServerName is the name ECK's HTTP certificate carries for t:
// "<name>-es-http.<namespace>.svc". It is verified even when the URL is
// overridden.
func ServerName(t Target) string {
	return eck.HTTPService(t.Name) + "." + t.Namespace + serviceDomainSuffix
}

// Client returns a client for t, reusing the previous one when the URL and
// ECK's Secrets are unchanged.
func (r *Resolver) Client(ctx context.Context, t Target) (*Client, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("failed to resolve elasticsearch: %w", err)
	}
	u := r.URL(t)
	username, password, err := r.credentials(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve elasticsearch %s: %w", t, err)
	}
	var ca []byte
	if strings.HasPrefix(u, "https://") {
		certs, err := r.secret(ctx, t.Namespace, eck.HTTPCertsPublic(t.Name))
		if err != nil {
			return nil, fmt.Errorf("failed to resolve elasticsearch %s: %w", t, err)
		}
		// Without ca.crt (a user-provided certificate from a public CA) the
		// system roots are used.
		ca = certs.Data[caCertKey]
	}
	version := fingerprint(u, username, password, string(ca))

	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cache[t]; ok && c.version == version {
		return c.client, nil
	}
	conf, err := newTLSConfig(ca, ServerName(t))
	if err != nil {
		return nil, fmt.Errorf("failed to resolve elasticsearch %s: Secret %s/%s key %q: %w",
			t, t.Namespace, eck.HTTPCertsPublic(t.Name), caCertKey, err)
	}
	var rt http.RoundTripper
	if r.newTransport != nil {
		rt = r.newTransport(conf)
	} else {
		rt = newHTTPTransport(conf)
	}
	log := r.log.With(logKeyElasticsearch, t.String())
	c, err := NewClient(ClientConfig{URL: u, Username: username, Password: Secret(password), Transport: rt, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("failed to resolve elasticsearch %s: %w", t, err)
	}
	_, had := r.cache[t]
	r.cache[t] = cachedClient{version: version, client: c}
	if had {
		log.Debug("credentials or CA changed, rebuilt client")
	} else {
		log.Debug("built client", logKeyURL, u, logKeyUser, username)
	}
	return c, nil
}

// credentials returns the user the agent authenticates as in t and its password.
func (r *Resolver) credentials(ctx context.Context, t Target) (string, string, error) {
	if r.useElastic {
		s, err := r.secret(ctx, t.Namespace, eck.ElasticUserSecret(t.Name))
		if err != nil {
			return "", "", err
		}
		if len(s.Data[elasticUser]) == 0 {
			return "", "", fmt.Errorf("Secret %s/%s has no key %q (does spec.auth.disableElasticUser remove the elastic user? then unset elasticsearch.useElasticUser)",
				s.Namespace, s.Name, elasticUser)
		}
		return elasticUser, string(s.Data[elasticUser]), nil
	}
	name := UserSecretName(t.Name)
	// From the informer cache: every pass of every link asks (at 1,000 links a live GET each was
	// most of an idle exporter's API calls); from the API server when it was just created.
	data, err := r.getSecret(ctx, t.Namespace, name)
	if apierrors.IsNotFound(err) {
		return "", "", fmt.Errorf("Secret %s/%s not found: %w", t.Namespace, name, ErrUserNotProvisioned)
	}
	if err != nil {
		return "", "", fmt.Errorf("failed to get Secret %s/%s: %w", t.Namespace, name, err)
	}
	user, password := string(data[corev1.BasicAuthUsernameKey]), string(data[corev1.BasicAuthPasswordKey])
	if user == "" || password == "" {
		return "", "", fmt.Errorf("Secret %s/%s lacks %q or %q: %w", t.Namespace, name,
			corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey, ErrUserNotProvisioned)
	}
	return user, password, nil
}

// Forget drops the cached client of t (e.g. when the Elasticsearch resource
// is deleted).
func (r *Resolver) Forget(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cache, t)
}

func (r *Resolver) secret(ctx context.Context, ns, name string) (*secretData, error) {
	data, err := r.getSecret(ctx, ns, name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to get Secret %s/%s (is the Elasticsearch resource managed by ECK and reconciled?): %w", ns, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get Secret %s/%s: %w", ns, name, err)
	}
	return &secretData{Namespace: ns, Name: name, Data: data}, nil
}

// getSecret reads a Secret's data from the informer cache, or from the API server when the cache
// does not hold it; the API server's error is returned as it is.
func (r *Resolver) getSecret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	if r.cached != nil {
		if s, ok := r.cached(ns, name); ok {
			return s.Data, nil
		}
	}
	s, err := r.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// secretData is the part of a Secret the resolver uses.
type secretData struct {
	Namespace, Name string
	Data            map[string][]byte
}
