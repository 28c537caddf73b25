package esim

import (
	"sort"
	"strings"
	"testing"
	"time"
)

const keysPath = "/_security/api_key"

func keyNames(r result) string {
	var names []string
	for _, k := range jsonPath(r.body, "api_keys").([]any) {
		names = append(names, k.(map[string]any)["name"].(string))
	}
	return strings.Join(names, ",")
}

func TestGetAPIKeys(t *testing.T) {
	e := newEnv(t, "8.14.3")
	a, _ := e.createCCKey(`{"name":"alpha-1","access":{"search":[{"names":["a"]}]}}`)
	e.createCCKey(`{"name":"alpha-2","access":{"search":[{"names":["a"]}]},"expiration":"1s"}`)
	_, restEnc := e.createRestKey(`{"name":"beta"}`)
	bobKey := e.do("POST", keysPath, `{"name":"bobs"}`, asUser("bob")).body["id"].(string)
	e.clock.Advance(2 * time.Second)

	cases := []struct {
		name, query string
		opts        []opt
		status      int
		want        string
	}{
		{"all", "", nil, 200, "alpha-1,alpha-2,beta,bobs"},
		{"by id", "?id=" + a, nil, 200, "alpha-1"},
		{"by name", "?name=beta", nil, 200, "beta"},
		{"name prefix", "?name=alpha*", nil, 200, "alpha-1,alpha-2"},
		{"name star", "?name=*", nil, 200, "alpha-1,alpha-2,beta,bobs"},
		{"unknown name", "?name=nope", nil, 200, ""},
		{"active only", "?active_only=true", nil, 200, "alpha-1,beta,bobs"},
		{"username", "?username=bob", nil, 200, "bobs"},
		{"realm", "?realm_name=file1&username=elastic", nil, 200, "alpha-1,alpha-2,beta"},
		{"owner", "?owner", []opt{asUser("bob")}, 200, "bobs"},
		{"owner via API key is the key itself", "?owner=true", []opt{apiKeyAuth(restEnc)}, 200, "beta"},
		{"unknown id is 404", "?id=nope", nil, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", keysPath+tc.query, "", tc.opts...)
			if r.status != tc.status || keyNames(r) != tc.want {
				t.Errorf("got %d [%s], want %d [%s]", r.status, keyNames(r), tc.status, tc.want)
			}
		})
	}
	t.Run("404 body", func(t *testing.T) {
		if r := e.do("GET", keysPath+"?id=nope", ""); string(r.raw) != `{"api_keys":[]}` {
			t.Errorf("body %s", r.raw)
		}
	})
	t.Run("with_limited_by", func(t *testing.T) {
		r := e.do("GET", keysPath+"?with_limited_by=true", "")
		for _, k := range jsonPath(r.body, "api_keys").([]any) {
			m := k.(map[string]any)
			_, has := m["limited_by"]
			if has != (m["type"] == "rest") {
				t.Errorf("key %v: limited_by present=%v", m["name"], has)
			}
		}
	})
	_ = bobKey
	runErrCases(t, e, []errCase{
		{name: "id and name", method: "GET", path: keysPath + "?id=a&name=b", status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: only one of [api key id, api key name] can be specified;"},
		{name: "id and username", method: "GET", path: keysPath + "?id=a&username=b", status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: username or realm name must not be specified when the api key id or api key name is specified;"},
		{name: "owner and realm", method: "GET", path: keysPath + "?owner=true&realm_name=file1", status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: neither username nor realm-name may be specified when retrieving owned API keys;"},
		{name: "all three", method: "GET", path: keysPath + "?id=a&name=b&username=c&owner", status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: only one of [api key id, api key name] can be specified;2: username or realm name must not be specified when the api key id or api key name is specified;3: neither username nor realm-name may be specified when retrieving owned API keys;"},
		{name: "bad boolean", method: "GET", path: keysPath + "?owner=yes", status: 400, typ: "illegal_argument_exception",
			reason: "Failed to parse value [yes] as only [true] or [false] are allowed."},
		{name: "unknown param with suggestion", method: "GET", path: keysPath + "?nam=x", status: 400, typ: "illegal_argument_exception",
			reason: "request [/_security/api_key] contains unrecognized parameter: [nam] -> did you mean [name]?"},
		{name: "body not allowed", method: "GET", path: keysPath, body: `{}`, status: 400, typ: "illegal_argument_exception",
			reason: "request [GET /_security/api_key] does not support having a body"},
	})
	t.Run("8.9 has no active_only", func(t *testing.T) {
		e := newEnv(t, "8.9.0")
		r := e.do("GET", keysPath+"?active_only=true", "")
		wantErr(t, r, 400, "illegal_argument_exception", "request [/_security/api_key] contains unrecognized parameter: [active_only]")
	})
}

func TestInvalidateAPIKeys(t *testing.T) {
	e := newEnv(t, "8.14.3")
	del := func(body string, o ...opt) result { return e.do("DELETE", keysPath, body, o...) }
	k1, _ := e.createCCKey(`{"name":"one","access":{"search":[{"names":["a"]}]}}`)
	k2, _ := e.createRestKey(`{"name":"two-a"}`)
	k3, _ := e.createRestKey(`{"name":"two-b"}`)
	k4 := e.do("POST", keysPath, `{"name":"bobs"}`, asUser("bob")).body["id"].(string)

	check := func(t *testing.T, r result, want ...string) {
		t.Helper()
		got := toStrings(r.body["invalidated_api_keys"])
		sort.Strings(got)
		sort.Strings(want)
		if r.status != 200 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("got %d %s, want %v", r.status, r.raw, want)
		}
		if _, has := r.body["error_details"]; has || r.body["error_count"] != float64(0) {
			t.Errorf("error fields: %s", r.raw)
		}
	}
	t.Run("by ids", func(t *testing.T) { check(t, del(`{"ids":["`+k1+`"]}`), k1) })
	t.Run("already invalidated is an empty 200", func(t *testing.T) {
		r := del(`{"ids":["` + k1 + `"]}`)
		if string(r.raw) != `{"invalidated_api_keys":[],"previously_invalidated_api_keys":[],"error_count":0}` {
			t.Errorf("got %s", r.raw)
		}
		if info, _ := e.n.APIKey(k1); !info.Invalidated || info.Invalidation == nil {
			t.Error("APIKey view not invalidated")
		}
	})
	t.Run("unknown id is an empty 200", func(t *testing.T) { check(t, del(`{"id":"nope"}`)) })
	t.Run("by name prefix", func(t *testing.T) { check(t, del(`{"name":"two*"}`), k2, k3) })
	t.Run("owner", func(t *testing.T) { check(t, del(`{"owner":"true"}`, asUser("bob")), k4) })
	t.Run("username", func(t *testing.T) {
		k5, _ := e.createRestKey(`{"name":"five"}`)
		check(t, del(`{"username":"elastic"}`), k5)
	})
	t.Run("GET shows invalidation", func(t *testing.T) {
		r := e.do("GET", keysPath+"?id="+k1, "")
		if jsonPath(r.body, "api_keys.0.invalidated") != true || jsonPath(r.body, "api_keys.0.invalidation") == nil {
			t.Errorf("got %s", r.raw)
		}
	})
	runErrCases(t, e, []errCase{
		{name: "no body", method: "DELETE", path: keysPath, status: 400, typ: "parse_exception", reason: "request body is required"},
		{name: "nothing specified", method: "DELETE", path: keysPath, body: `{}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false;"},
		{name: "ids and username", method: "DELETE", path: keysPath, body: `{"ids":["a"],"username":"u"}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: username or realm name must not be specified when the api key id(s) or api key name are specified;"},
		{name: "owner and realm", method: "DELETE", path: keysPath, body: `{"owner":true,"realm_name":"r"}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: neither username nor realm-name may be specified when invalidating owned API keys;"},
		{name: "ids and name", method: "DELETE", path: keysPath, body: `{"ids":["a"],"name":"n"}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: only one of [api key id(s), api key name] can be specified;"},
		{name: "empty ids", method: "DELETE", path: keysPath, body: `{"ids":[]}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: Field [ids] cannot be an empty array;"},
		{name: "blank ids", method: "DELETE", path: keysPath, body: `{"ids":[" ","a",""]}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: Field [ids] must not contain blank id, but got blank id at index position: [0, 2];"},
		{name: "id and ids", method: "DELETE", path: keysPath, body: `{"id":"a","ids":["b"]}`, status: 400, typ: "x_content_parse_exception",
			reason: "Failed to build [invalidate_api_key] after last required field arrived"},
		{name: "unknown field", method: "DELETE", path: keysPath, body: `{"idz":["a"]}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:2] [invalidate_api_key] unknown field [idz] did you mean any of [id, ids]?"},
		{name: "bad owner", method: "DELETE", path: keysPath, body: `{"owner":"maybe"}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:10] [invalidate_api_key] failed to parse field [owner]"},
	})
}

func TestQueryAPIKeys(t *testing.T) {
	e := newEnv(t, "8.14.3")
	q := func(body string) result { return e.do("POST", "/_security/_query/api_key", body) }
	e.createCCKey(`{"name":"cc-1","access":{"search":[{"names":["a"]}]},"metadata":{"env":"prod","tier":{"level":2}}}`)
	e.clock.Advance(time.Hour)
	e.createCCKey(`{"name":"cc-2","access":{"search":[{"names":["a"]}]},"metadata":{"env":"dev"},"expiration":"1d"}`)
	e.clock.Advance(time.Hour)
	rid, _ := e.createRestKey(`{"name":"rest-1"}`)
	e.do("DELETE", keysPath, `{"ids":["`+rid+`"]}`)

	cases := []struct{ name, body, want string }{
		{"no body", "", "cc-1,cc-2,rest-1"},
		{"match_all", `{"query":{"match_all":{}}}`, "cc-1,cc-2,rest-1"},
		{"term", `{"query":{"term":{"name":"cc-1"}}}`, "cc-1"},
		{"term object", `{"query":{"term":{"type":{"value":"rest"}}}}`, "rest-1"},
		{"terms", `{"query":{"terms":{"name":["cc-1","rest-1"]}}}`, "cc-1,rest-1"},
		{"match", `{"query":{"match":{"metadata.env":"dev"}}}`, "cc-2"},
		{"nested metadata", `{"query":{"term":{"metadata.tier.level":"2"}}}`, "cc-1"},
		{"prefix", `{"query":{"prefix":{"name":"cc"}}}`, "cc-1,cc-2"},
		{"wildcard", `{"query":{"wildcard":{"name":{"value":"*-2"}}}}`, "cc-2"},
		{"exists", `{"query":{"exists":{"field":"expiration"}}}`, "cc-2"},
		{"range now", `{"query":{"range":{"creation":{"gte":"now-90m"}}}}`, "cc-2,rest-1"},
		{"range millis", `{"query":{"range":{"creation":{"lt":1719990000001}}}}`, "cc-1"},
		{"invalidated", `{"query":{"term":{"invalidated":true}}}`, "rest-1"},
		{"ids none", `{"query":{"ids":{"values":["x"]}}}`, ""},
		{"bool", `{"query":{"bool":{"must":[{"prefix":{"name":"cc"}}],"must_not":{"term":{"metadata.env":"prod"}}}}}`, "cc-2"},
		{"bool should", `{"query":{"bool":{"should":[{"term":{"name":"cc-1"}},{"term":{"name":"rest-1"}}]}}}`, "cc-1,rest-1"},
		{"bool filter", `{"query":{"bool":{"filter":[{"term":{"username":"elastic"}},{"term":{"realm_name":"file1"}}]}}}`, "cc-1,cc-2,rest-1"},
		{"simple_query_string", `{"query":{"simple_query_string":{"query":"cc*","fields":["name"]}}}`, "cc-1,cc-2"},
		{"sort desc", `{"sort":[{"creation":{"order":"desc"}}]}`, "rest-1,cc-2,cc-1"},
		{"from size", `{"sort":["name"],"from":1,"size":1}`, "cc-2"},
		{"search_after", `{"sort":["name"],"search_after":["cc-1"]}`, "cc-2,rest-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := q(tc.body)
			if r.status != 200 || keyNames(r) != tc.want {
				t.Fatalf("got %d [%s] want [%s]: %s", r.status, keyNames(r), tc.want, r.raw)
			}
		})
	}
	t.Run("total count and _sort", func(t *testing.T) {
		r := q(`{"sort":["name"],"size":2}`)
		if r.body["total"] != float64(3) || r.body["count"] != float64(2) || jsonPath(r.body, "api_keys.0._sort.0") != "cc-1" {
			t.Errorf("got %s", r.raw)
		}
		r = q(`{"query":{"term":{"name":"zzz"}}}`)
		if string(r.raw) != `{"total":0,"count":0,"api_keys":[]}` {
			t.Errorf("no match: %s", r.raw)
		}
		if r := e.do("GET", "/_security/_query/api_key", `{"query":{"term":{"name":"cc-1"}}}`); keyNames(r) != "cc-1" {
			t.Errorf("GET with body: %s", r.raw)
		}
	})
	qp := "/_security/_query/api_key"
	runErrCases(t, e, []errCase{
		{name: "unknown body field", method: "POST", path: qp, body: `{"qurey":{}}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:2] [query_api_key_request_payload] unknown field [qurey] did you mean [query]?"},
		{name: "unsupported query", method: "POST", path: qp, body: `{"query":{"match_phrase":{"name":"x"}}}`, status: 400, typ: "illegal_argument_exception",
			reason: "Query type [match_phrase] is not supported for API Key query"},
		{name: "unknown query", method: "POST", path: qp, body: `{"query":{"foo":{}}}`, status: 400, typ: "parsing_exception", reason: "unknown query [foo]"},
		{name: "disallowed field", method: "POST", path: qp, body: `{"query":{"term":{"api_key_hash":"x"}}}`, status: 400, typ: "illegal_argument_exception",
			reason: "Field [api_key_hash] is not allowed for querying or aggregation"},
		{name: "negative from", method: "POST", path: qp, body: `{"from":-1}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: [from] parameter cannot be negative but was [-1];"},
		{name: "bad date", method: "POST", path: qp, body: `{"query":{"range":{"creation":{"gt":"yesterday"}}}}`, status: 400, typ: "parse_exception",
			reason: "failed to parse date field [yesterday] with format [epoch_millis]"},
		{name: "bad param", method: "POST", path: qp + "?with_limited_by=nah", status: 400, typ: "illegal_argument_exception",
			reason: "Failed to parse value [nah] as only [true] or [false] are allowed."},
	})
}

func TestAuthenticateEndpoint(t *testing.T) {
	e := newEnv(t, "8.14.3")
	r := e.do("GET", "/_security/_authenticate", "")
	want := `{"username":"elastic","roles":["superuser"],"full_name":null,"email":null,"metadata":{},"enabled":true,` +
		`"authentication_realm":{"name":"file1","type":"file"},"lookup_realm":{"name":"file1","type":"file"},"authentication_type":"realm"}`
	if string(r.raw) != want {
		t.Errorf("got %s", r.raw)
	}
	id, enc := e.createRestKey(`{"name":"me"}`)
	for _, scheme := range []string{"ApiKey", "APIKey", "apikey"} {
		r := e.do("GET", "/_security/_authenticate", "", withAuth(scheme+" "+enc))
		if r.status != 200 || jsonPath(r.body, "api_key.id") != id || jsonPath(r.body, "api_key.name") != "me" ||
			jsonPath(r.body, "authentication_realm.name") != "_es_api_key" || r.body["username"] != "elastic" {
			t.Errorf("%s: %d %s", scheme, r.status, r.raw)
		}
	}
}
