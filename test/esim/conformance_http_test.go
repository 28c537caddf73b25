package esim

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const anonReason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"

func TestAuthenticationFailures(t *testing.T) {
	e := newEnv(t, "8.14.3")
	ccID, ccEnc := e.createCCKey(`{"name":"cc","access":{"search":[{"names":["a"]}]}}`)
	restID, restEnc := e.createRestKey(`{"name":"r"}`)
	expID, expEnc := e.createRestKey(`{"name":"x","expiration":"1m"}`)
	invID, invEnc := e.createRestKey(`{"name":"i"}`)
	e.do("DELETE", keysPath, `{"ids":["`+invID+`"]}`)
	e.clock.Advance(2 * time.Minute)
	wrongSecret := base64.StdEncoding.EncodeToString([]byte(restID + ":not-the-secret"))
	unknown := base64.StdEncoding.EncodeToString([]byte("nosuchid:secret"))
	_ = restEnc

	cases := []struct {
		name       string
		path       string
		opts       []opt
		reason     string
		additional string
		causeType  string
		cause      string
	}{
		{name: "missing", path: "/_cluster/health?pretty", opts: []opt{noAuth()}, reason: "missing authentication credentials for REST request [/_cluster/health?pretty]"},
		{name: "unknown scheme", path: "/", opts: []opt{withAuth("Digest abc")}, reason: "missing authentication credentials for REST request [/]"},
		{name: "bad password", path: "/", opts: []opt{withAuth(basic("elastic", "wrong"))}, reason: "unable to authenticate user [elastic] for REST request [/]"},
		{name: "unknown user", path: "/", opts: []opt{withAuth(basic("nobody", "x"))}, reason: "unable to authenticate user [nobody] for REST request [/]"},
		{name: "basic bad encoding", path: "/", opts: []opt{withAuth("Basic !!")}, reason: "invalid basic authentication header encoding",
			causeType: "illegal_argument_exception", cause: "Illegal base64 character 21"},
		{name: "basic no colon", path: "/", opts: []opt{withAuth("Basic " + base64.StdEncoding.EncodeToString([]byte("elastic")))},
			reason: "invalid basic authentication header value"},
		{name: "api key malformed", path: "/", opts: []opt{withAuth("ApiKey " + base64.StdEncoding.EncodeToString([]byte("nocolon")))},
			reason: "error attempting to authenticate request", causeType: "illegal_argument_exception", cause: "invalid ApiKey value"},
		{name: "api key unknown id", path: "/", opts: []opt{apiKeyAuth(unknown)}, reason: anonReason, additional: "API key: unable to find apikey with id nosuchid"},
		{name: "api key wrong secret", path: "/", opts: []opt{apiKeyAuth(wrongSecret)}, reason: anonReason, additional: "API key: invalid credentials for API key [" + restID + "]"},
		{name: "api key expired", path: "/", opts: []opt{apiKeyAuth(expEnc)}, reason: anonReason, additional: "API key: api key is expired"},
		{name: "api key invalidated", path: "/", opts: []opt{apiKeyAuth(invEnc)}, reason: anonReason, additional: "API key: api key [" + invID + "] has been invalidated"},
		{name: "cross-cluster key on REST", path: "/", opts: []opt{withAuth("apikey " + ccEnc)},
			reason: "authentication expected API key type of [rest], but API key [" + ccID + "] has type [cross_cluster]"},
		{name: "bearer", path: "/", opts: []opt{withAuth("Bearer abc")}, reason: anonReason},
	}
	wantHdr := []string{`Basic realm="security", charset="UTF-8"`, `Bearer realm="security"`, `ApiKey`}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, "", tc.opts...)
			wantErr(t, r, 401, "security_exception", tc.reason)
			if got := r.header.Values("WWW-Authenticate"); !reflect.DeepEqual(got, wantHdr) {
				t.Errorf("WWW-Authenticate header = %q", got)
			}
			hdr := toStrings(jsonPath(r.body, "error.header.WWW-Authenticate"))
			root := toStrings(jsonPath(r.body, "error.root_cause.0.header.WWW-Authenticate"))
			if !reflect.DeepEqual(hdr, wantHdr) || !reflect.DeepEqual(root, wantHdr) {
				t.Errorf("error.header = %q, root_cause header = %q", hdr, root)
			}
			if got, _ := jsonPath(r.body, "error.additional_unsuccessful_credentials").(string); got != tc.additional {
				t.Errorf("additional_unsuccessful_credentials = %q, want %q", got, tc.additional)
			}
			if tc.causeType != "" {
				if typ, reason := causedBy(t, r, 1); typ != tc.causeType || reason != tc.cause {
					t.Errorf("caused_by = %s %s", typ, reason)
				}
			}
		})
	}
	t.Run("expected expiry boundary", func(t *testing.T) {
		info, _ := e.n.APIKey(expID)
		if !info.Expired(e.clock.Now()) {
			t.Error("key should be expired")
		}
	})
}

func TestRouting(t *testing.T) {
	e := newEnv(t, "8.14.3")
	t.Run("no handler", func(t *testing.T) {
		r := e.do("GET", "/_foo/bar?x=1", "", noAuth())
		if r.status != 400 || string(r.raw) != `{"error":"no handler found for uri [/_foo/bar?x=1] and method [GET]"}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		r := e.do("POST", "/_remote/info", "", noAuth())
		if r.status != 405 || string(r.raw) != `{"error":"Incorrect HTTP method for uri [/_remote/info] and method [POST], allowed: [GET]","status":405}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
		if r.header.Get("Allow") != "GET" {
			t.Errorf("Allow = %q", r.header.Get("Allow"))
		}
		r = e.do("PATCH", "/_security/api_key", "")
		if !strings.Contains(string(r.raw), "allowed: [GET, POST, PUT, DELETE]") {
			t.Errorf("got %s", r.raw)
		}
	})
	t.Run("options", func(t *testing.T) {
		r := e.do("OPTIONS", "/_cluster/settings", "", noAuth())
		if r.status != 200 || r.header.Get("Allow") != "GET,PUT" || len(r.raw) != 0 {
			t.Errorf("got %d %q %s", r.status, r.header.Get("Allow"), r.raw)
		}
	})
	t.Run("index routes", func(t *testing.T) {
		r := e.do("GET", "/my-index", "")
		wantErr(t, r, 404, "index_not_found_exception", "no such index [my-index]")
		if m, _ := r.body["error"].(map[string]any); m["resource.id"] != "my-index" || m["index_uuid"] != "_na_" {
			t.Errorf("metadata missing: %s", r.raw)
		}
		if r := e.do("HEAD", "/my-index", ""); r.status != 404 || len(r.raw) != 0 {
			t.Errorf("HEAD: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/my-index", "", noAuth()); r.status != 401 {
			t.Errorf("unauthenticated index GET: %d", r.status)
		}
	})
	t.Run("HEAD /", func(t *testing.T) {
		r := e.do("HEAD", "/", "")
		if r.status != 200 || len(r.raw) != 0 || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("got %d %q", r.status, r.header.Get("Content-Type"))
		}
	})
	t.Run("content type missing", func(t *testing.T) {
		r := e.do("PUT", "/_cluster/settings", `{}`, withoutContentType())
		if r.status != 406 || string(r.raw) != `{"error":"Content-Type header is missing","status":406}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("content type unsupported", func(t *testing.T) {
		r := e.do("PUT", "/_cluster/settings", `{}`, withHeader("Content-Type", "text/plain"))
		if r.status != 406 || string(r.raw) != `{"error":"Content-Type header [text/plain] is not supported","status":406}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("compatible-with accepted and echoed", func(t *testing.T) {
		ct := "application/vnd.elasticsearch+json;compatible-with=8"
		r := e.do("PUT", "/_cluster/settings", `{"persistent":{"logger.org.x":"debug"}}`, withHeader("Content-Type", ct), withHeader("Accept", ct))
		if r.status != 200 || r.header.Get("Content-Type") != ct {
			t.Errorf("got %d %q %s", r.status, r.header.Get("Content-Type"), r.raw)
		}
	})
	t.Run("compatible-with unsupported", func(t *testing.T) {
		r := e.do("GET", "/", "", withHeader("Accept", "application/vnd.elasticsearch+json;compatible-with=6"))
		wantErr(t, r, 400, "media_type_header_exception", "Invalid media-type value on headers [Accept, Content-Type]")
		if typ, reason := causedBy(t, r, 1); typ != "status_exception" ||
			reason != "Accept version must be either version 8 or 7, but found 6. Accept=application/vnd.elasticsearch+json;compatible-with=6" {
			t.Errorf("caused_by = %s %s", typ, reason)
		}
	})
	t.Run("bad query escape", func(t *testing.T) {
		r := e.do("GET", "/?a=%", "")
		wantErr(t, r, 400, "bad_parameter_exception", "java.lang.IllegalArgumentException: unterminated escape sequence at end of string: %")
	})
	t.Run("body not supported", func(t *testing.T) {
		r := e.do("GET", "/_remote/info", `{}`)
		wantErr(t, r, 400, "illegal_argument_exception", "request [GET /_remote/info] does not support having a body")
	})
	t.Run("opaque id echoed", func(t *testing.T) {
		if r := e.do("GET", "/", "", withHeader("X-Opaque-Id", "abc")); r.header.Get("X-Opaque-Id") != "abc" {
			t.Error("X-Opaque-Id not echoed")
		}
	})
	t.Run("unsupported rest key update", func(t *testing.T) {
		r := e.do("PUT", "/_security/api_key/abc", `{}`)
		if r.status != 500 {
			t.Errorf("got %d", r.status)
		}
	})
	_ = http.MethodGet
}

func TestMainInfo(t *testing.T) {
	for _, tc := range []struct{ version, lucene, wire string }{
		{"8.14.3", "9.10.0", "7.17.0"}, {"8.19.2", "9.12.2", "7.17.0"}, {"9.3.2", "10.3.1", "8.18.0"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := newEnv(t, tc.version)
			r := e.do("GET", "/", "")
			if jsonPath(r.body, "version.number") != tc.version || jsonPath(r.body, "version.lucene_version") != tc.lucene ||
				jsonPath(r.body, "version.minimum_wire_compatibility_version") != tc.wire || r.body["tagline"] != "You Know, for Search" ||
				r.body["cluster_uuid"] != e.n.ClusterUUID() || r.body["name"] != "node-0" || r.body["cluster_name"] != "c1" {
				t.Errorf("got %s", r.raw)
			}
		})
	}
	e := newEnv(t, "8.14.3")
	runErrCases(t, e, []errCase{
		{name: "unknown param", method: "GET", path: "/?prety", status: 400, typ: "illegal_argument_exception",
			reason: "request [/] contains unrecognized parameter: [prety] -> did you mean [pretty]?"},
	})
	if r := e.do("GET", "/?pretty", ""); !strings.Contains(string(r.raw), "\n  \"name\"") {
		t.Errorf("pretty not applied: %s", r.raw)
	}
}

func TestNewNodeValidation(t *testing.T) {
	for _, v := range []string{"", "7.17.0", "10.0.0", "8.x", "8.14"} {
		if _, err := NewNode(Config{Version: v, ClusterName: "c", NodeName: "n"}); err == nil || !strings.Contains(err.Error(), "Version") {
			t.Errorf("version %q: err = %v", v, err)
		}
	}
	if _, err := NewNode(Config{Version: "8.14.3", NodeName: "n"}); err == nil || !strings.Contains(err.Error(), "ClusterName") {
		t.Errorf("missing ClusterName: %v", err)
	}
	n, err := NewNode(Config{Version: "9.0.0-SNAPSHOT", ClusterName: "c", NodeName: "n"})
	if err != nil || n.ClusterUUID() == "" || n.NodeID() == "" {
		t.Errorf("snapshot version: %v", err)
	}
}
