package esim

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

const ccPath = "/_security/cross_cluster/api_key"

func TestCreateCrossClusterKeySuccess(t *testing.T) {
	e := newEnv(t, "8.14.3")
	r := e.do("POST", ccPath, `{"name":"my-cc-key","access":{"search":[{"names":["logs*"]}]},"expiration":"1d","metadata":{"tag":"dev"}}`)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	id, secret, encoded := r.body["id"].(string), r.body["api_key"].(string), r.body["encoded"].(string)
	if len(id) != 20 || len(secret) != 22 {
		t.Errorf("id/secret lengths = %d/%d, want 20/22", len(id), len(secret))
	}
	if want := base64.StdEncoding.EncodeToString([]byte(id + ":" + secret)); encoded != want {
		t.Error("encoded is not base64(id:api_key)")
	}
	if got, want := int64(r.body["expiration"].(float64)), e.clock.Now().Add(24*time.Hour).UnixMilli(); got != want {
		t.Errorf("expiration = %d, want %d", got, want)
	}
	// Field order: id, name, expiration, api_key, encoded.
	if !strings.HasPrefix(string(r.raw), `{"id":"`+id+`","name":"my-cc-key","expiration":`) || !strings.Contains(string(r.raw), `,"api_key":`) {
		t.Errorf("unexpected field order")
	}

	t.Run("no expiration field without expiration", func(t *testing.T) {
		r := e.do("POST", ccPath, `{"name":"k2","access":{"replication":[{"names":["a"]}]}}`)
		if _, has := r.body["expiration"]; has || r.status != 200 {
			t.Fatalf("status %d, expiration present %v", r.status, has)
		}
	})
	t.Run("single object instead of array", func(t *testing.T) {
		r := e.do("POST", ccPath, `{"name":"k3","access":{"search":{"names":"one"}}}`)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
	t.Run("stored role descriptor and access", func(t *testing.T) {
		r := e.do("GET", "/_security/api_key?id="+id, "")
		k := jsonPath(r.body, "api_keys.0").(map[string]any)
		rd := jsonPath(k, "role_descriptors.cross_cluster")
		if got := strings.Join(toStrings(jsonPath(rd, "cluster")), ","); got != "cross_cluster_search,monitor_enrich" {
			t.Errorf("cluster = %s", got)
		}
		if got := strings.Join(toStrings(jsonPath(rd, "indices.0.privileges")), ","); got != "read,read_cross_cluster,view_index_metadata" {
			t.Errorf("privileges = %s", got)
		}
		if jsonPath(k, "access.search.0.allow_restricted_indices") != false || k["type"] != "cross_cluster" {
			t.Errorf("access/type wrong: %v", k)
		}
		if jsonPath(k, "realm") != "file1" || jsonPath(k, "username") != "elastic" || jsonPath(k, "metadata.tag") != "dev" {
			t.Errorf("owner/metadata wrong: %v", k)
		}
	})
	t.Run("both search and replication, query as string", func(t *testing.T) {
		r := e.do("POST", ccPath, `{"name":"k4","access":{"search":[{"names":["a"],"query":{"term":{"category":"shared"}}}]}}`)
		kid := r.body["id"].(string)
		g := e.do("GET", "/_security/api_key?id="+kid, "")
		if q := jsonPath(g.body, "api_keys.0.access.search.0.query"); q != `{"term":{"category":"shared"}}` {
			t.Errorf("query = %v", q)
		}
		r = e.do("POST", ccPath, `{"name":"k5","access":{"search":[{"names":["a"]}],"replication":[{"names":["b"]}]}}`)
		g = e.do("GET", "/_security/api_key?id="+r.body["id"].(string), "")
		if got := strings.Join(toStrings(jsonPath(g.body, "api_keys.0.role_descriptors.cross_cluster.cluster")), ","); got != "cross_cluster_search,monitor_enrich,cross_cluster_replication" {
			t.Errorf("cluster = %s", got)
		}
	})
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestCreateCrossClusterKeyErrors(t *testing.T) {
	e := newEnv(t, "8.14.3")
	_, restKey := e.createRestKey(`{"name":"rest"}`)
	const pl = "cross_cluster_api_key_request_payload"
	access := `"access":{"search":[{"names":["a"]}]}`
	long := strings.Repeat("x", 257)
	runErrCases(t, e, []errCase{
		{name: "no body", method: "POST", path: ccPath, status: 400, typ: "parse_exception", reason: "request body is required"},
		{name: "malformed JSON", method: "POST", path: ccPath, body: `{"name":"a",}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:14] Unexpected character ('}' (code 125)): was expecting double-quote to start field name"},
		{name: "not an object", method: "POST", path: ccPath, body: `[]`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:1] [" + pl + "] Expected START_OBJECT but was: START_ARRAY"},
		{name: "unknown field", method: "POST", path: ccPath, body: `{"name":"a",` + access + `,"foo":1}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:51] [" + pl + "] unknown field [foo]"},
		{name: "unknown field suggestion", method: "POST", path: ccPath, body: `{"name":"a","acess":{}}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:13] [" + pl + "] unknown field [acess] did you mean [access]?"},
		{name: "required name", method: "POST", path: ccPath, body: `{` + access + `}`, status: 400, typ: "illegal_argument_exception", reason: "Required [name]"},
		{name: "required access", method: "POST", path: ccPath, body: `{"name":"a"}`, status: 400, typ: "illegal_argument_exception", reason: "Required [access]"},
		{name: "required both", method: "POST", path: ccPath, body: `{}`, status: 400, typ: "illegal_argument_exception", reason: "Required [name, access]"},
		{name: "access null", method: "POST", path: ccPath, body: `{"name":"a","access":null}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:22] [" + pl + "] access doesn't support values of type: VALUE_NULL"},
		{name: "name wrong type", method: "POST", path: ccPath, body: `{"name":1,` + access + `}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:9] [" + pl + "] name doesn't support values of type: VALUE_NUMBER"},
		{name: "empty access", method: "POST", path: ccPath, body: `{"name":"a","access":{}}`, status: 400, typ: "illegal_argument_exception",
			reason: "must specify non-empty access for either [search] or [replication]"},
		{name: "empty search", method: "POST", path: ccPath, body: `{"name":"a","access":{"search":[]}}`, status: 400, typ: "illegal_argument_exception",
			reason: "must specify non-empty access for either [search] or [replication]"},
		{name: "replication DLS", method: "POST", path: ccPath, body: `{"name":"a","access":{"replication":[{"names":["a"],"query":{"match_all":{}}}]}}`,
			status: 400, typ: "illegal_argument_exception", reason: "replication does not support document or field level security"},
		{name: "replication FLS", method: "POST", path: ccPath, body: `{"name":"a","access":{"replication":[{"names":["a"],"field_security":{"grant":["x"]}}]}}`,
			status: 400, typ: "illegal_argument_exception", reason: "replication does not support document or field level security"},
		{name: "search DLS with replication", method: "POST", path: ccPath,
			body:   `{"name":"a","access":{"search":[{"names":["a"],"query":"{}"}],"replication":[{"names":["b"]}]}}`,
			status: 400, typ: "illegal_argument_exception", reason: "search does not support document or field level security if replication is assigned"},
		{name: "names wrong type", method: "POST", path: ccPath, body: `{"name":"a","access":{"search":[{"names":1}]}}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:33] [" + pl + "] failed to parse field [access]"},
		{name: "explicit privileges", method: "POST", path: ccPath, body: `{"name":"a","access":{"search":[{"names":["a"],"privileges":["read"]}]}}`,
			status: 400, typ: "x_content_parse_exception", reason: "[1:33] [" + pl + "] failed to parse field [access]"},
		{name: "bad expiration", method: "POST", path: ccPath, body: `{"name":"a",` + access + `,"expiration":"abc"}`, status: 400, typ: "x_content_parse_exception",
			reason: "Failed to build [" + pl + "] after last required field arrived"},
		{name: "empty name", method: "POST", path: ccPath, body: `{"name":"",` + access + `}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: api key name is required;"},
		{name: "long name", method: "POST", path: ccPath, body: `{"name":"` + long + `",` + access + `}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: api key name may not be more than 256 characters long;"},
		{name: "whitespace underscore metadata", method: "POST", path: ccPath, body: `{"name":"_a ",` + access + `,"metadata":{"_x":1}}`, status: 400,
			typ:    "action_request_validation_exception",
			reason: "Validation Failed: 1: api key name may not begin or end with whitespace;2: api key name may not begin with an underscore;3: API key metadata keys may not start with [_];"},
		{name: "authenticated by API key", method: "POST", path: ccPath, body: `{"name":"a",` + access + `}`, opts: []opt{apiKeyAuth(restKey)},
			status: 400, typ: "illegal_argument_exception", reason: "authentication via API key not supported: An API key cannot be used to create a cross-cluster API key"},
		{name: "certificate_identity before 9.3", method: "POST", path: ccPath, body: `{"name":"a",` + access + `,"certificate_identity":"CN=x"}`,
			status: 400, typ: "x_content_parse_exception", reason: "[1:51] [" + pl + "] unknown field [certificate_identity]"},
		{name: "query param", method: "POST", path: ccPath + "?foo=1", body: `{"name":"a",` + access + `}`, status: 400, typ: "illegal_argument_exception",
			reason: "request [" + ccPath + "] contains unrecognized parameter: [foo]"},
	})

	t.Run("nested causes", func(t *testing.T) {
		r := e.do("POST", ccPath, `{"name":"a","access":{"search":[{"names":1}]}}`)
		typ, reason := causedBy(t, r, 1)
		if typ != "x_content_parse_exception" || reason != "[1:33] [cross_cluster_api_key_request_access] failed to parse field [search]" {
			t.Errorf("caused_by = %s %s", typ, reason)
		}
		typ, reason = causedBy(t, r, 2)
		if typ != "parse_exception" || reason != "failed to parse indices privileges for role [cross_cluster]. expected field [names] value to be a string or an array of strings, but found [VALUE_NUMBER] instead" {
			t.Errorf("caused_by.caused_by = %s %s", typ, reason)
		}
		r = e.do("POST", ccPath, `{"name":"a",`+access+`,"expiration":"1.5d"}`)
		if typ, reason := causedBy(t, r, 1); typ != "illegal_argument_exception" || reason != "failed to parse [1.5d], fractional time values are not supported" {
			t.Errorf("fractional caused_by = %s %s", typ, reason)
		}
		r = e.do("POST", ccPath, `{"name":"a",`+access+`,"expiration":"abc"}`)
		if _, reason := causedBy(t, r, 1); reason != "failed to parse setting [expiration] with value [abc] as a time value: unit is missing or unrecognized" {
			t.Errorf("caused_by = %s", reason)
		}
	})
}

func TestCreateCrossClusterKeyVersions(t *testing.T) {
	t.Run("8.13 has no monitor_enrich and allows search DLS with replication", func(t *testing.T) {
		e := newEnv(t, "8.13.4")
		id, _ := e.createCCKey(`{"name":"a","access":{"search":[{"names":["a"],"query":"{}"}],"replication":[{"names":["b"]}]}}`)
		g := e.do("GET", "/_security/api_key?id="+id, "")
		if got := strings.Join(toStrings(jsonPath(g.body, "api_keys.0.role_descriptors.cross_cluster.cluster")), ","); got != "cross_cluster_search,cross_cluster_replication" {
			t.Errorf("cluster = %s", got)
		}
	})
	t.Run("8.9 has no cross-cluster API", func(t *testing.T) {
		e := newEnv(t, "8.9.2")
		r := e.do("POST", ccPath, `{"name":"a"}`)
		if r.status != 400 || string(r.raw) != `{"error":"no handler found for uri [`+ccPath+`] and method [POST]"}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("9.3 certificate_identity", func(t *testing.T) {
		e := newEnv(t, "9.3.2")
		id, _ := e.createCCKey(`{"name":"a","access":{"search":[{"names":["a"]}]},"certificate_identity":"CN=.*\\.example\\.com,O=Example Corp,C=US"}`)
		g := e.do("GET", "/_security/api_key?id="+id, "")
		if got := jsonPath(g.body, "api_keys.0.certificate_identity"); got != `CN=.*\.example\.com,O=Example Corp,C=US` {
			t.Errorf("certificate_identity = %v", got)
		}
		info, _ := e.n.APIKey(id)
		if info.CertificateIdentity == nil || *info.CertificateIdentity != `CN=.*\.example\.com,O=Example Corp,C=US` {
			t.Errorf("APIKey view = %v", info.CertificateIdentity)
		}
		r := e.do("POST", ccPath, `{"name":"a","access":{"search":[{"names":["a"]}]},"certificate_identity":"CN=(bad"}`)
		wantErr(t, r, 400, "illegal_argument_exception", "Invalid certificate_identity format: [CN=(bad]. Must be a valid regex.")
	})
}

func TestCreateRestKey(t *testing.T) {
	e := newEnv(t, "8.19.2")
	id, encoded := e.createRestKey(`{"name":"r1","role_descriptors":{"ro":{"cluster":["monitor"]}},"metadata":{"team":"a"}}`)
	r := e.do("GET", "/_security/_authenticate", "", apiKeyAuth(encoded))
	if r.status != 200 || jsonPath(r.body, "api_key.id") != id || r.body["authentication_type"] != "api_key" {
		t.Fatalf("authenticate with rest key: %d %s", r.status, r.raw)
	}
	g := e.do("GET", "/_security/api_key?id="+id, "")
	if jsonPath(g.body, "api_keys.0.role_descriptors.ro.transient_metadata.enabled") != true || jsonPath(g.body, "api_keys.0.type") != "rest" {
		t.Errorf("rest key view: %s", g.raw)
	}
	if _, has := jsonPath(g.body, "api_keys.0").(map[string]any)["access"]; has {
		t.Error("rest key must not have access")
	}
	t.Run("PUT works too", func(t *testing.T) {
		if r := e.do("PUT", "/_security/api_key", `{"name":"r2"}`); r.status != 200 {
			t.Errorf("PUT: %d", r.status)
		}
	})
	t.Run("derived key with empty role descriptor", func(t *testing.T) {
		if r := e.do("POST", "/_security/api_key", `{"name":"d","role_descriptors":{"none":{}}}`, apiKeyAuth(encoded)); r.status != 200 {
			t.Errorf("derived: %d %s", r.status, r.raw)
		}
	})
	runErrCases(t, e, []errCase{
		{name: "required name", method: "POST", path: "/_security/api_key", body: `{}`, status: 400, typ: "illegal_argument_exception", reason: "Required [name]"},
		{name: "unknown field", method: "POST", path: "/_security/api_key", body: `{"name":"a","access":{}}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:13] [api_key_request] unknown field [access]"},
		{name: "validation", method: "POST", path: "/_security/api_key", body: `{"name":""}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: api key name is required;"},
		{name: "derived key with privileges", method: "POST", path: "/_security/api_key", body: `{"name":"d"}`, opts: []opt{apiKeyAuth(encoded)},
			status: 400, typ: "illegal_argument_exception", reason: "creating derived api keys requires an explicit role descriptor that is empty (has no privileges)"},
		{name: "no body", method: "POST", path: "/_security/api_key", status: 400, typ: "parse_exception", reason: "request body is required"},
	})
}
