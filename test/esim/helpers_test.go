package esim

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testPassword = "s3cr3t-pass" // test-only credential, never logged

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type tenv struct {
	t     *testing.T
	n     *Node
	srv   *httptest.Server
	clock *fakeClock
}

func newEnv(t *testing.T, version string) *tenv {
	t.Helper()
	clock := &fakeClock{t: time.UnixMilli(1719990000000)}
	n, err := NewNode(Config{Version: version, ClusterName: "c1", NodeName: "node-0", Now: clock.Now})
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	n.SetUser("elastic", testPassword)
	n.SetUser("bob", testPassword)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	return &tenv{t: t, n: n, srv: srv, clock: clock}
}

type result struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// opt mutates a request.
type opt func(*http.Request)

func withAuth(v string) opt { return func(r *http.Request) { r.Header.Set("Authorization", v) } }
func noAuth() opt           { return func(r *http.Request) { r.Header.Del("Authorization") } }
func asUser(u string) opt   { return withAuth(basic(u, testPassword)) }
func withHeader(k, v string) opt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}
func withoutContentType() opt { return func(r *http.Request) { r.Header.Del("Content-Type") } }

func basic(u, p string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
}

func apiKeyAuth(encoded string) opt { return withAuth("ApiKey " + encoded) }

func (e *tenv) do(method, path, body string, opts ...opt) result {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", basic("elastic", testPassword))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	res := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			e.t.Fatalf("%s %s: invalid JSON response %q: %v", method, path, raw, err)
		}
		res.body = m
	}
	if got := resp.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		e.t.Errorf("%s %s: X-Elastic-Product = %q", method, path, got)
	}
	return res
}

// errInfo extracts error.type, error.reason and root_cause[0].
func errInfo(t *testing.T, r result) (typ, reason, rootTyp, rootReason string) {
	t.Helper()
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.raw)
	}
	typ, _ = e["type"].(string)
	reason, _ = e["reason"].(string)
	if rc, ok := e["root_cause"].([]any); ok && len(rc) > 0 {
		m, _ := rc[0].(map[string]any)
		rootTyp, _ = m["type"].(string)
		rootReason, _ = m["reason"].(string)
	}
	if st, _ := r.body["status"].(float64); int(st) != r.status {
		t.Errorf("body status %v != HTTP status %d", r.body["status"], r.status)
	}
	return
}

// wantErr checks status, type and reason (exact, or prefix when reason ends
// with "..."), and that root_cause holds the same type/reason unless
// rootTyp is given.
func wantErr(t *testing.T, r result, status int, typ, reason string, root ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	gt, gr, rt, rr := errInfo(t, r)
	if gt != typ {
		t.Errorf("error.type = %q, want %q (body %s)", gt, typ, r.raw)
	}
	if !reasonMatches(gr, reason) {
		t.Errorf("error.reason = %q, want %q", gr, reason)
	}
	wantRT, wantRR := typ, reason
	if len(root) == 2 {
		wantRT, wantRR = root[0], root[1]
	}
	if rt != wantRT || !reasonMatches(rr, wantRR) {
		t.Errorf("root_cause = %q/%q, want %q/%q", rt, rr, wantRT, wantRR)
	}
}

func reasonMatches(got, want string) bool {
	if p, ok := strings.CutSuffix(want, "..."); ok {
		return strings.HasPrefix(got, p)
	}
	return got == want
}

// causedBy returns error.caused_by (nested levels by repeating).
func causedBy(t *testing.T, r result, depth int) (string, string) {
	t.Helper()
	m, _ := r.body["error"].(map[string]any)
	for i := 0; i < depth && m != nil; i++ {
		m, _ = m["caused_by"].(map[string]any)
	}
	if m == nil {
		t.Fatalf("no caused_by at depth %d in %s", depth, r.raw)
	}
	typ, _ := m["type"].(string)
	reason, _ := m["reason"].(string)
	return typ, reason
}

// createCCKey creates a cross-cluster key and returns id and encoded value.
func (e *tenv) createCCKey(body string) (string, string) {
	e.t.Helper()
	r := e.do("POST", "/_security/cross_cluster/api_key", body)
	if r.status != 200 {
		e.t.Fatalf("create cc key: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string), r.body["encoded"].(string)
}

func (e *tenv) createRestKey(body string) (string, string) {
	e.t.Helper()
	r := e.do("POST", "/_security/api_key", body)
	if r.status != 200 {
		e.t.Fatalf("create rest key: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string), r.body["encoded"].(string)
}

// jsonPath walks a decoded body by keys / indexes ("a.b.0.c").
func jsonPath(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// errCase is one request expected to fail with an ES error.
type errCase struct {
	name   string
	method string
	path   string
	body   string
	opts   []opt
	status int
	typ    string
	reason string
	root   []string // root_cause type and reason when they differ from the top level
}

func runErrCases(t *testing.T, e *tenv, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body, tc.opts...)
			wantErr(t, r, tc.status, tc.typ, tc.reason, tc.root...)
		})
	}
}
