package esim

import (
	"testing"
	"time"
)

func TestUpdateCrossClusterKey(t *testing.T) {
	e := newEnv(t, "8.19.2")
	id, _ := e.createCCKey(`{"name":"k","access":{"search":[{"names":["a"]}]},"metadata":{"v":1}}`)
	upd := func(body string, o ...opt) result { return e.do("PUT", ccPath+"/"+id, body, o...) }

	t.Run("access replaced", func(t *testing.T) {
		r := upd(`{"access":{"replication":[{"names":["b"]}]}}`)
		if r.status != 200 || string(r.raw) != `{"updated":true}` {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
		g := e.do("GET", "/_security/api_key?id="+id, "")
		if jsonPath(g.body, "api_keys.0.access.replication.0.names.0") != "b" || jsonPath(g.body, "api_keys.0.access.search") != nil {
			t.Errorf("access not replaced: %s", g.raw)
		}
		if jsonPath(g.body, "api_keys.0.metadata.v") != float64(1) {
			t.Error("metadata must be unchanged")
		}
	})
	t.Run("same again is a no-op", func(t *testing.T) {
		if r := upd(`{"access":{"replication":[{"names":["b"]}]}}`); string(r.raw) != `{"updated":false}` {
			t.Errorf("got %s", r.raw)
		}
	})
	t.Run("metadata only", func(t *testing.T) {
		if r := upd(`{"metadata":{"v":2}}`); string(r.raw) != `{"updated":true}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("expiration with metadata", func(t *testing.T) {
		if r := upd(`{"metadata":{"v":2},"expiration":"2h"}`); string(r.raw) != `{"updated":true}` {
			t.Errorf("got %d %s", r.status, r.raw)
		}
		info, _ := e.n.APIKey(id)
		if info.Expiration == nil || !info.Expiration.Equal(e.clock.Now().Add(2*time.Hour)) {
			t.Errorf("expiration = %v", info.Expiration)
		}
	})

	restID, restEnc := e.createRestKey(`{"name":"r"}`)
	invID, _ := e.createCCKey(`{"name":"inv","access":{"search":[{"names":["a"]}]}}`)
	e.do("DELETE", "/_security/api_key", `{"ids":["`+invID+`"]}`)
	expID, _ := e.createCCKey(`{"name":"exp","access":{"search":[{"names":["a"]}]},"expiration":"1s"}`)
	bobID, _ := e.createCCKey(`{"name":"bob","access":{"search":[{"names":["a"]}]}}`)
	_ = bobID
	e.clock.Advance(2 * time.Second)
	const must = "Validation Failed: 1: must update either [access] or [metadata] for cross-cluster API keys;"
	runErrCases(t, e, []errCase{
		{name: "no body", method: "PUT", path: ccPath + "/" + id, status: 400, typ: "parse_exception", reason: "request body is required"},
		{name: "empty object", method: "PUT", path: ccPath + "/" + id, body: `{}`, status: 400, typ: "action_request_validation_exception", reason: must},
		{name: "only expiration", method: "PUT", path: ccPath + "/" + id, body: `{"expiration":"1d"}`, status: 400, typ: "action_request_validation_exception", reason: must},
		{name: "empty access", method: "PUT", path: ccPath + "/" + id, body: `{"access":{}}`, status: 400, typ: "illegal_argument_exception",
			reason: "must specify non-empty access for either [search] or [replication]"},
		{name: "unknown field", method: "PUT", path: ccPath + "/" + id, body: `{"name":"x"}`, status: 400, typ: "x_content_parse_exception",
			reason: "[1:2] [update_cross_cluster_api_key_request_payload] unknown field [name]"},
		{name: "reserved metadata", method: "PUT", path: ccPath + "/" + id, body: `{"metadata":{"_a":1}}`, status: 400, typ: "action_request_validation_exception",
			reason: "Validation Failed: 1: API key metadata keys may not start with [_];"},
		{name: "unknown id", method: "PUT", path: ccPath + "/nope", body: `{"metadata":{}}`, status: 404, typ: "resource_not_found_exception",
			reason: "no API key owned by requesting user found for ID [nope]"},
		{name: "other owner", method: "PUT", path: ccPath + "/" + id, body: `{"metadata":{}}`, opts: []opt{asUser("bob")}, status: 404,
			typ: "resource_not_found_exception", reason: "no API key owned by requesting user found for ID [" + id + "]"},
		{name: "invalidated", method: "PUT", path: ccPath + "/" + invID, body: `{"metadata":{}}`, status: 400, typ: "illegal_argument_exception",
			reason: "cannot update invalidated API key [" + invID + "]"},
		{name: "expired", method: "PUT", path: ccPath + "/" + expID, body: `{"metadata":{}}`, status: 400, typ: "illegal_argument_exception",
			reason: "cannot update expired API key [" + expID + "]"},
		{name: "rest key", method: "PUT", path: ccPath + "/" + restID, body: `{"metadata":{}}`, status: 400, typ: "illegal_argument_exception",
			reason: "cannot update API key of type [rest] while expected type is [cross_cluster]"},
		{name: "authenticated by API key", method: "PUT", path: ccPath + "/" + id, body: `{"metadata":{}}`, opts: []opt{apiKeyAuth(restEnc)}, status: 400,
			typ: "illegal_argument_exception", reason: "authentication via API key not supported: only the owner user can update an API key"},
		{name: "certificate_identity before 9.3", method: "PUT", path: ccPath + "/" + id, body: `{"certificate_identity":null}`, status: 400,
			typ: "x_content_parse_exception", reason: "[1:2] [update_cross_cluster_api_key_request_payload] unknown field [certificate_identity]"},
	})
}

func TestUpdateCrossClusterKey93(t *testing.T) {
	e := newEnv(t, "9.3.2")
	id, _ := e.createCCKey(`{"name":"k","access":{"search":[{"names":["a"]}]},"certificate_identity":"CN=a"}`)
	r := e.do("PUT", ccPath+"/"+id, `{}`)
	wantErr(t, r, 400, "action_request_validation_exception",
		"Validation Failed: 1: must update  [access] or [metadata] or [certificate_identity] for cross-cluster API keys;")
	r = e.do("PUT", ccPath+"/"+id, `{"certificate_identity":"CN=b"}`)
	if string(r.raw) != `{"updated":true}` {
		t.Fatalf("set: %s", r.raw)
	}
	r = e.do("PUT", ccPath+"/"+id, `{"certificate_identity":null}`)
	if string(r.raw) != `{"updated":true}` {
		t.Fatalf("clear: %s", r.raw)
	}
	if info, _ := e.n.APIKey(id); info.CertificateIdentity != nil {
		t.Errorf("certificate_identity not cleared")
	}
	g := e.do("GET", "/_security/api_key?id="+id, "")
	if _, has := jsonPath(g.body, "api_keys.0").(map[string]any)["certificate_identity"]; has {
		t.Error("cleared certificate_identity still rendered")
	}
	r = e.do("PUT", ccPath+"/"+id, `{"certificate_identity":"["}`)
	wantErr(t, r, 400, "illegal_argument_exception", "Invalid certificate_identity format: [[]. Must be a valid regex.")
}
