package esim

import (
	"io"
	"net/http"
	"sort"
	"strings"
)

// methodOrder is RestRequest.Method's declaration order, used for the
// "allowed: [...]" list of 405 responses and the Allow header.
var methodOrder = []string{"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "CONNECT"}

// globalParams are accepted by every handler (BaseRestHandler response params).
var globalParams = []string{"pretty", "human", "error_trace", "filter_path", "format"}

// action runs an endpoint once its request has been parsed and checked.
type action func() (*response, error)

// endpoint is one method of a route.
type endpoint struct {
	// params are the query parameters the handler reads (besides path params).
	params []string
	// body is true when the handler consumes a request body if one is sent.
	body bool
	// prepare parses params and body (RestHandler.prepareRequest) and
	// returns the action to run.
	prepare func(c *reqCtx) (action, error)
	// transport is the transport action the endpoint runs, which the caller
	// must be authorized for (authz.go); "" runs without a check.
	transport string
}

type route struct {
	segs    []string // literal segment or "{name}"
	methods map[string]*endpoint
}

type response struct {
	status int
	body   any // nil: no body
	header http.Header
}

func ok(body any) (*response, error) { return &response{status: 200, body: body}, nil }

// reqCtx is one request as a handler sees it.
type reqCtx struct {
	n          *Node
	r          *http.Request
	method     string
	path       string // decoded path (request.path())
	uri        string // raw URI with query (request.uri())
	pathParams map[string]string
	params     map[string]string
	body       []byte
	auth       *authn
}

// boolParam is RestRequest.paramAsBoolean: "" means true.
func (c *reqCtx) boolParam(name string, def bool) (bool, *Error) {
	v, ok := c.params[name]
	if !ok {
		return def, nil
	}
	if v == "" {
		return true, nil
	}
	b, err := parseESBool(v)
	if err != nil {
		return false, err
	}
	return b, nil
}

// timeParam validates a TimeValue query parameter.
func (c *reqCtx) timeParam(name string) (timeValue, bool, *Error) {
	v, ok := c.params[name]
	if !ok {
		return timeValue{}, false, nil
	}
	tv, err := parseTimeValue(v, name)
	if err != nil {
		return timeValue{}, false, err
	}
	return tv, true, nil
}

// requireBody is RestRequest.requiredContent.
func (c *reqCtx) requireBody() (*jnode, *Error) {
	if len(c.body) == 0 {
		return nil, parseErr("request body is required")
	}
	n, err := parseJSON(c.body)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Node) newRouter() http.Handler {
	rt := &router{n: n}
	n.registerRoutes(rt)
	return rt
}

type router struct {
	n      *Node
	routes []*route
}

func (rt *router) add(method, path string, ep *endpoint) {
	segs := splitPath(path)
	for _, r := range rt.routes {
		if strings.Join(r.segs, "/") == strings.Join(segs, "/") {
			r.methods[method] = ep
			return
		}
	}
	rt.routes = append(rt.routes, &route{segs: segs, methods: map[string]*endpoint{method: ep}})
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

type match struct {
	r      *route
	params map[string]string
	wild   int
}

// matches returns the routes matching segs, explicit ones first (PathTrie
// tries explicit nodes before wildcards).
func (rt *router) matches(segs []string) []match {
	var out []match
	for _, r := range rt.routes {
		if len(r.segs) != len(segs) {
			continue
		}
		m := match{r: r, params: map[string]string{}}
		good := true
		for i, s := range r.segs {
			if strings.HasPrefix(s, "{") {
				m.params[strings.Trim(s, "{}")] = segs[i]
				m.wild++
			} else if s != segs[i] {
				good = false
				break
			}
		}
		if good {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].wild < out[j].wild })
	return out
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rt.n
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	neg := negotiate(r, n.ver.major)
	write := func(resp *response) { n.writeResponse(w, r, neg, resp) }
	if neg.err != nil {
		write(errResponse(neg.err))
		return
	}
	params, perr := decodeQuery(r.URL.RawQuery)
	if perr != nil {
		write(errResponse(perr))
		return
	}
	segs := splitPath(r.URL.Path)
	matches := rt.matches(segs)
	var ep *endpoint
	var pathParams map[string]string
	valid := map[string]bool{}
	for _, m := range matches {
		for meth := range m.r.methods {
			valid[meth] = true
		}
		if e, ok := m.r.methods[r.Method]; ok && ep == nil {
			ep, pathParams = e, m.params
		}
	}
	if ep == nil {
		allowed := make([]string, 0, len(valid))
		for _, meth := range methodOrder {
			if valid[meth] {
				allowed = append(allowed, meth)
			}
		}
		switch {
		case len(allowed) > 0 && r.Method == http.MethodOptions:
			write(&response{status: 200, header: http.Header{"Allow": {strings.Join(allowed, ",")}}})
		case len(allowed) > 0:
			write(&response{status: 405, header: http.Header{"Allow": {strings.Join(allowed, ",")}},
				body: obj{{"error", "Incorrect HTTP method for uri [" + uri + "] and method [" + r.Method + "], allowed: [" + strings.Join(allowed, ", ") + "]"}, {"status", 405}}})
		default:
			write(&response{status: 400, body: obj{{"error", "no handler found for uri [" + uri + "] and method [" + r.Method + "]"}}})
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 100<<20))
	if err != nil {
		write(errResponse(newErr(400, "exception", "failed to read request body")))
		return
	}
	if len(body) > 0 {
		if resp := checkContentType(r); resp != nil {
			write(resp)
			return
		}
	}
	c := &reqCtx{n: n, r: r, method: r.Method, path: r.URL.Path, uri: uri, pathParams: pathParams, params: params, body: body}
	auth, aerr := n.authenticateREST(c)
	if aerr != nil {
		write(errResponse(aerr))
		return
	}
	c.auth = auth
	write(rt.run(c, ep))
}

func (rt *router) run(c *reqCtx, ep *endpoint) *response {
	act, err := ep.prepare(c)
	if err != nil {
		return errResponse(err)
	}
	// BaseRestHandler: unconsumed params, then unconsumed body.
	known := map[string]bool{}
	var candidates []string
	for _, p := range append(append([]string{}, ep.params...), globalParams...) {
		known[p] = true
		candidates = append(candidates, p)
	}
	var unknown []string
	for p := range c.params {
		if !known[p] {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		var b strings.Builder
		b.WriteString("request [" + c.path + "] contains unrecognized parameter")
		if len(unknown) > 1 {
			b.WriteString("s")
		}
		b.WriteString(": ")
		for i, u := range unknown {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("[" + u + "]" + suggest(u, candidates, " -> did you mean "))
		}
		return errResponse(iae("%s", b.String()))
	}
	if len(c.body) > 0 && !ep.body {
		return errResponse(iae("request [%s %s] does not support having a body", c.method, c.path))
	}
	if aerr := c.n.authorize(c.auth, ep.transport); aerr != nil {
		return errResponse(aerr)
	}
	resp, err := act()
	if err != nil {
		return errResponse(err)
	}
	return resp
}

func errResponse(err error) *response {
	e, ok := err.(*Error)
	if !ok {
		e = newErr(500, "exception", "%s", err.Error())
	}
	resp := &response{status: e.Status, body: e.body()}
	if len(e.Header) > 0 {
		resp.header = http.Header{}
		for k, v := range e.Header {
			resp.header[k] = append([]string(nil), v...)
		}
	}
	return resp
}

func (n *Node) writeResponse(w http.ResponseWriter, r *http.Request, neg negotiation, resp *response) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	h.Set("X-Elastic-Product", "Elasticsearch")
	if id := r.Header.Get("X-Opaque-Id"); id != "" {
		h.Set("X-Opaque-Id", id)
	}
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	b := appendJSON(nil, resp.body)
	if _, pretty := r.URL.Query()["pretty"]; pretty {
		b = prettyJSON(b)
	}
	h.Set("Content-Type", neg.contentType)
	h.Set("Content-Length", itoa(len(b)))
	w.WriteHeader(resp.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
