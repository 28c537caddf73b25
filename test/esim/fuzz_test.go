package esim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzStatuses is the documented set of statuses esim may answer with.
var fuzzStatuses = map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true, 406: true, 408: true, 500: true}

// fuzzNode is a node with a user, a REST key, a cross-cluster key and a remote.
func fuzzNode(t *testing.T) (*Node, string) {
	n, err := NewNode(Config{Version: "9.3.2", ClusterName: "c", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	n.SetUser("elastic", testPassword)
	var restKey string
	for _, c := range []struct{ path, body string }{
		{"/_security/api_key", `{"name":"rest"}`},
		{"/_security/cross_cluster/api_key", `{"name":"cc","access":{"search":[{"names":["a"]}]}}`},
	} {
		req := httptest.NewRequest("POST", c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", basic("elastic", testPassword))
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, req)
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
			t.Fatalf("setup %s: %d %s", c.path, rec.Code, rec.Body.Bytes())
		}
		if restKey == "" {
			restKey, _ = m["encoded"].(string)
		}
	}
	return n, restKey
}

// FuzzHandler feeds arbitrary method/path/body/Authorization to the REST
// handler: esim must never panic, must answer with a documented status, the
// X-Elastic-Product header, and valid JSON whenever it sends a body.
// auth "" means valid Basic credentials, "key" a valid REST API key, anything
// else is sent as the raw Authorization header.
func FuzzHandler(f *testing.F) {
	seeds := [][4]string{
		{"GET", "/", "", ""},
		{"POST", "/_security/cross_cluster/api_key", `{"name":"k","access":{"search":[{"names":["a"],"query":{"term":{"a":1}}}]},"expiration":"1d","metadata":{"x":[1,{"y":null}]}}`, ""},
		{"PUT", "/_cluster/settings", `{"persistent":{"cluster":{"remote":{"r":{"mode":"proxy","proxy_address":"h:9443","skip_unavailable":true}}}}}`, ""},
		{"POST", "/_security/_query/api_key", `{"query":{"bool":{"must":[{"wildcard":{"name":"c*"}}],"should":{"range":{"creation":{"gte":"now-1d/d"}}}}},"sort":[{"creation":"desc"}],"search_after":[1]}`, "key"},
		{"DELETE", "/_security/api_key", `{"ids":["", "x"],"name":"n*"}`, ""},
		{"GET", "/_cluster/health?wait_for_nodes=>=2&timeout=1ms", "", ""},
		{"GET", "/_security/api_key?id=x&name=y&owner=maybe", "", "ApiKey Zm9vOmJhcg=="},
		{"PUT", "/_security/cross_cluster/api_key/abc", `{"access":{},"certificate_identity":"(["}`, "Basic !!"},
		{"POST", "/_nodes/reload_secure_settings", `{"secure_settings_password":"p" /* comment */}`, ""},
		{"OPTIONS", "/_remote/info?a=%zz", "", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, method, path, body, auth string) {
		n, restKey := fuzzNode(t)
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://esim"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if body == "" {
			req.Body, req.ContentLength = http.NoBody, 0
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		switch auth {
		case "":
			req.Header.Set("Authorization", basic("elastic", testPassword))
		case "key":
			req.Header.Set("Authorization", "ApiKey "+restKey)
		default:
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, req)
		if !fuzzStatuses[rec.Code] {
			t.Fatalf("%s %q: undocumented status %d: %s", method, path, rec.Code, rec.Body.Bytes())
		}
		if rec.Header().Get("X-Elastic-Product") != "Elasticsearch" {
			t.Fatalf("missing X-Elastic-Product")
		}
		out := rec.Body.Bytes()
		if method == http.MethodHead || len(out) == 0 {
			if rec.Code >= 400 && method != http.MethodHead && method != http.MethodOptions {
				t.Fatalf("%s %q: error %d without body", method, path, rec.Code)
			}
			return
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("%s %q: invalid JSON (%v): %s", method, path, err, out)
		}
		if _, isErr := v["error"]; rec.Code >= 400 && !isErr && rec.Code != 404 && rec.Code != 408 {
			t.Fatalf("%s %q: error status %d without error field: %s", method, path, rec.Code, out)
		}
	})
}
