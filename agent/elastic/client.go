// Package elastic is how the ecklink agent talks to an ECK-managed
// Elasticsearch: it builds clients authenticated as the agent's own user (or,
// when a setting asks for it, ECK's elastic user) over ECK's HTTP CA
// (Resolver), and offers the few operations the agent needs (cross-cluster API
// keys, remote cluster settings, remote info, secure settings reload), with
// typed results and errors that say whether a retry may help.
//
// Requests go through go-elasticsearch's esapi with response structs of this package's own, not
// its typed API: a typed client builds the whole typed API tree (every endpoint) per client, and
// linking it grew the agent's binary by 42 MB (154 -> 112 MB), which the agent paid for in
// resident memory (its pages are mapped as they are touched).
//
// Secrets (user passwords, encoded API keys) never appear in logs or
// errors produced here: request and response bodies are never logged, and
// encoded keys are returned as Secret, which redacts itself when printed.
package elastic

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	elasticsearch "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/hashicorp/go-hclog"
)

// Log field keys.
const (
	logKeyElasticsearch = "elasticsearch"
	logKeyMethod        = "method"
	logKeyPath          = "path"
	logKeyStatus        = "status"
	logKeyDuration      = "duration"
	logKeyError         = "error"
	logKeyKeyID         = "key_id"
	logKeyKeyName       = "key_name"
	logKeyCount         = "count"
	logKeyAlias         = "alias"
	logKeyNode          = "node"
	logKeyURL           = "url"
	logKeyUser          = "user"
)

// defaultPageSize is the page size of ListKeys.
const defaultPageSize = 100

// ClientConfig configures a Client built directly (the Resolver builds
// them from ECK's Secrets).
type ClientConfig struct {
	// URL is the Elasticsearch HTTP endpoint, e.g.
	// "https://logs-es-http.data.svc:9200". Required.
	URL string
	// Username and Password are the Basic credentials.
	Username string
	Password Secret
	// CACert is the PEM bundle the server certificate must chain to; the
	// system roots are used when empty.
	CACert []byte
	// ServerName is the name verified in the server certificate; the URL's
	// host when empty.
	ServerName string
	// Transport replaces the HTTP transport built from CACert and
	// ServerName (tests, custom dialers).
	Transport http.RoundTripper
	// Logger receives debug lines; a null logger when nil.
	Logger hclog.Logger
	// RequestTimeout bounds each request, answer included (default
	// DefaultRequestTimeout): an Elasticsearch that accepts connections but
	// does not answer fails the request as unreachable instead of holding the
	// caller.
	RequestTimeout time.Duration
}

// DefaultRequestTimeout bounds each request by default. Elasticsearch waits 30s
// for its master by default (master_timeout) before it answers 503 itself.
const DefaultRequestTimeout = 30 * time.Second

// Client talks to one Elasticsearch cluster. It is safe for concurrent use.
type Client struct {
	username string
	// es is go-elasticsearch's transport alone (BaseClient): the requests are esapi's request
	// types, sent one by one, so the API tree of esapi.New (hundreds of functions built per
	// client) is neither built nor linked.
	es       *elasticsearch.BaseClient
	log      hclog.Logger
	pageSize int
	timeout  time.Duration
	// keyWrites counts API key writes (KeyWrites), settingsWrites cluster settings writes
	// (SettingsWrites).
	keyWrites, settingsWrites atomic.Uint64
}

// NewClient returns a client for cfg. It does not contact Elasticsearch.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := validateURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	rt := cfg.Transport
	if rt == nil {
		conf, err := newTLSConfig(cfg.CACert, cfg.ServerName)
		if err != nil {
			return nil, fmt.Errorf("failed to create client: %w", err)
		}
		rt = newHTTPTransport(conf)
	}
	es, err := elasticsearch.NewBaseClient(elasticsearch.Config{
		Addresses: []string{cfg.URL},
		Username:  cfg.Username,
		Password:  cfg.Password.Value(),
		Transport: rt,
		// Callers retry with backoff (see Retryable); a transport retry of a
		// POST that reached ES could create a second API key.
		DisableRetry: true,
		Logger:       transportLogger{log: cfg.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	return &Client{
		username: cfg.Username,
		es:       es,
		log:      cfg.Logger,
		pageSize: defaultPageSize,
		timeout:  cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout),
	}, nil
}

// Username is the user the client authenticates as: the owner of the API keys
// it creates.
func (c *Client) Username() string { return c.username }

// KeyWrites counts the API key writes (create, update, invalidate) made through this client,
// twice each: when one starts and when it ends. A listing of keys taken while the count did not
// move missed no write made through this client.
func (c *Client) KeyWrites() uint64 { return c.keyWrites.Load() }

// SettingsWrites counts the persistent cluster settings writes made through this client, twice
// each as KeyWrites does: a read of the settings or of _remote/info taken while the count did
// not move is still what a read now would see of those writes.
func (c *Client) SettingsWrites() uint64 { return c.settingsWrites.Load() }

// keyWrite counts a key write's start; the returned func counts its end.
func (c *Client) keyWrite() func() {
	c.keyWrites.Add(1)
	return func() { c.keyWrites.Add(1) }
}

// validateURL accepts http(s) URLs with a host and no credentials, query or
// fragment. The URL is never echoed: it could carry user info.
func validateURL(raw string) error {
	if raw == "" {
		return errors.New("URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("URL is not valid")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL scheme must be http or https, not %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("URL has no host")
	case u.User != nil:
		return errors.New("URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("URL must not have a query or fragment")
	case u.Path != "" && u.Path != "/":
		return errors.New("URL must not have a path")
	}
	return nil
}

// newTLSConfig trusts caPEM (system roots when empty) and verifies serverName
// (the URL host when empty). It never skips verification.
func newTLSConfig(caPEM []byte, serverName string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("failed to parse CA bundle: no PEM certificate found")
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

func newHTTPTransport(conf *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       conf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
}

// transportLogger logs each round trip at trace level (debug on failure)
// without bodies or headers, which carry credentials and keys.
type transportLogger struct{ log hclog.Logger }

func (l transportLogger) LogRoundTrip(req *http.Request, res *http.Response, err error, _ time.Time, d time.Duration) error {
	args := []any{logKeyDuration, d}
	if req != nil {
		args = append(args, logKeyMethod, req.Method, logKeyPath, req.URL.Path)
	}
	if res != nil {
		args = append(args, logKeyStatus, res.StatusCode)
	}
	if err != nil {
		l.log.Debug("elasticsearch request failed", append(args, logKeyError, err)...)
		return nil
	}
	l.log.Trace("elasticsearch request", args...)
	return nil
}

func (transportLogger) RequestBodyEnabled() bool  { return false }
func (transportLogger) ResponseBodyEnabled() bool { return false }

// sender performs one request (see esapiSender).
type sender func(ctx context.Context) (*http.Response, error)

// esapiSender adapts an esapi request.
func (c *Client) esapiSender(req esapi.Request) sender {
	return func(ctx context.Context) (*http.Response, error) {
		res, err := req.Do(ctx, c.es)
		if err != nil {
			return nil, err
		}
		return &http.Response{StatusCode: res.StatusCode, Header: res.Header, Body: res.Body}, nil
	}
}

// call sends a request and decodes a 2xx JSON body into out (when not nil).
// Other answers become *APIError.
func (c *Client) call(ctx context.Context, send sender, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := send(ctx)
	if err != nil {
		return &UnreachableError{Err: err}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody))
		_ = res.Body.Close()
	}()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return decodeError(res.StatusCode, res.Body)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("failed to decode response: %w", err)
	}
	return nil
}

// jsonBody encodes v as a request body.
func jsonBody(v any) (*bytes.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("failed to encode request: %w", err)
	}
	return bytes.NewReader(b), nil
}
