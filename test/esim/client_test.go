package esim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/typedapi/types"
)

func clientConfig(e *tenv) elasticsearch.Config {
	return elasticsearch.Config{
		Addresses: []string{e.srv.URL},
		Username:  "elastic",
		Password:  testPassword,
		Transport: e.srv.Client().Transport,
	}
}

func TestTypedClient(t *testing.T) {
	e := newEnv(t, "8.19.2")
	ctx := context.Background()
	tc, err := elasticsearch.NewTypedClient(clientConfig(e))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	info, err := tc.Info().Do(ctx)
	if err != nil || info.Version.Int != "8.19.2" || info.ClusterName != "c1" {
		t.Fatalf("Info: %v %+v", err, info)
	}
	health, err := tc.Cluster.Health().Do(ctx)
	if err != nil || health.Status.String() != "green" || health.NumberOfNodes != 1 {
		t.Fatalf("Health: %v %+v", err, health)
	}
	health, err = tc.Cluster.Health().WaitForNodes("3").Timeout("5ms").Do(ctx)
	if err != nil || !health.TimedOut {
		t.Fatalf("Health timeout (408 decodes as a response): %v %+v", err, health)
	}

	created, err := tc.Security.CreateCrossClusterApiKey().Name("my-cc-key").Expiration("1d").
		Access(&types.Access{Search: []types.SearchAccess{{Names: []string{"logs*"}}}}).
		Metadata(types.Metadata{"tag": json.RawMessage(`"dev"`)}).Do(ctx)
	if err != nil || created.Id == "" || created.Expiration == nil {
		t.Fatalf("CreateCrossClusterApiKey: %v %+v", err, created)
	}
	t.Run("metadata-only typed update sends access {} and gets the 400", func(t *testing.T) {
		_, err := tc.Security.UpdateCrossClusterApiKey(created.Id).Metadata(types.Metadata{"tag": json.RawMessage(`"prod"`)}).Do(ctx)
		var ee *types.ElasticsearchError
		if !errors.As(err, &ee) || ee.Status != 400 || ee.ErrorCause.Type != "illegal_argument_exception" ||
			*ee.ErrorCause.Reason != "must specify non-empty access for either [search] or [replication]" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("typed update with access", func(t *testing.T) {
		res, err := tc.Security.UpdateCrossClusterApiKey(created.Id).
			Access(&types.Access{Replication: []types.ReplicationAccess{{Names: []string{"r*"}}}}).Do(ctx)
		if err != nil || !res.Updated {
			t.Fatalf("update: %v %+v", err, res)
		}
	})
	t.Run("GetApiKey", func(t *testing.T) {
		res, err := tc.Security.GetApiKey().Id(created.Id).Do(ctx)
		if err != nil || len(res.ApiKeys) != 1 || res.ApiKeys[0].Type.String() != "cross_cluster" || res.ApiKeys[0].Access == nil {
			t.Fatalf("GetApiKey: %v %+v", err, res)
		}
		_, err = tc.Security.GetApiKey().Id("nope").Do(ctx)
		var ee *types.ElasticsearchError
		if !errors.As(err, &ee) || ee.Status != 404 || ee.ErrorCause.Type != "" {
			t.Fatalf("404 should decode as ElasticsearchError with empty type: %v", err)
		}
	})
	t.Run("QueryApiKeys", func(t *testing.T) {
		res, err := tc.Security.QueryApiKeys().Query(&types.ApiKeyQueryContainer{
			Term: map[string]types.TermQuery{"name": {Value: "my-cc-key"}},
		}).Do(ctx)
		if err != nil || res.Total != 1 || res.Count != 1 {
			t.Fatalf("QueryApiKeys: %v %+v", err, res)
		}
	})
	t.Run("settings and remote info", func(t *testing.T) {
		_, err := tc.Cluster.PutSettings().Persistent(map[string]json.RawMessage{
			"cluster.remote.r1.mode": json.RawMessage(`"proxy"`), "cluster.remote.r1.proxy_address": json.RawMessage(`"h:9443"`),
		}).Do(ctx)
		if err != nil {
			t.Fatalf("PutSettings: %v", err)
		}
		got, err := tc.Cluster.GetSettings().FlatSettings(true).Do(ctx)
		if err != nil || string(got.Persistent["cluster.remote.r1.mode"]) != `"proxy"` {
			t.Fatalf("GetSettings: %v %+v", err, got)
		}
		e.n.SetRemoteStatusFunc(func(string) RemoteStatus {
			return RemoteStatus{Connected: true, NumSocketsConnected: 3, HasCredentials: true}
		})
		ri, err := tc.Cluster.RemoteInfo().Do(ctx)
		if err != nil {
			t.Fatalf("RemoteInfo: %v", err)
		}
		p, ok := ri["r1"].(*types.ClusterRemoteProxyInfo)
		if !ok || !p.Connected || p.NumProxySocketsConnected != 3 || p.ClusterCredentials == nil || *p.ClusterCredentials != "::es_redacted::" {
			t.Fatalf("RemoteInfo r1 = %#v", ri["r1"])
		}
		_, err = tc.Cluster.PutSettings().Persistent(map[string]json.RawMessage{"cluster.remote.r1.seeds": json.RawMessage(`["a:1"]`)}).Do(ctx)
		var ee *types.ElasticsearchError
		if !errors.As(err, &ee) || ee.Status != 400 || !strings.HasPrefix(*ee.ErrorCause.Reason, `Setting "cluster.remote.r1.seeds" cannot be used`) {
			t.Fatalf("bad PutSettings: %v", err)
		}
	})
	t.Run("ReloadSecureSettings", func(t *testing.T) {
		res, err := tc.Nodes.ReloadSecureSettings().SecureSettingsPassword("x").Do(ctx)
		if err != nil || res.ClusterName != "c1" || res.Nodes[e.n.NodeID()].Name != "node-0" || res.NodeStats.Total != 1 {
			t.Fatalf("Reload: %v %+v", err, res)
		}
	})
	t.Run("InvalidateApiKey and Authenticate", func(t *testing.T) {
		res, err := tc.Security.InvalidateApiKey().Ids(created.Id).Do(ctx)
		if err != nil || len(res.InvalidatedApiKeys) != 1 || res.ErrorCount != 0 {
			t.Fatalf("Invalidate: %v %+v", err, res)
		}
		who, err := tc.Security.Authenticate().Do(ctx)
		if err != nil || who.Username != "elastic" || who.AuthenticationRealm.Name != "file1" {
			t.Fatalf("Authenticate: %v %+v", err, who)
		}
	})
}

func TestESAPIClient(t *testing.T) {
	e := newEnv(t, "9.3.2")
	cfg := clientConfig(e)
	cfg.EnableCompatibilityMode = true
	es, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	body := func(r io.Reader) map[string]any {
		var m map[string]any
		if err := json.NewDecoder(r).Decode(&m); err != nil {
			t.Fatalf("decode: %v", err)
		}
		return m
	}
	res, err := es.Security.CreateCrossClusterAPIKey(strings.NewReader(
		`{"name":"k","access":{"search":[{"names":["a"]}]},"certificate_identity":"^CN=signer\\.a,O=Acme$"}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("create: %v %v", err, res)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/vnd.elasticsearch+json;compatible-with=8" {
		t.Errorf("content type %q", ct)
	}
	id := body(res.Body)["id"].(string)
	res.Body.Close()

	res, err = es.Security.UpdateCrossClusterAPIKey(id, strings.NewReader(`{"metadata":{"a":1}}`))
	if err != nil || res.StatusCode != 200 || body(res.Body)["updated"] != true {
		t.Fatalf("update: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Security.GetAPIKey(es.Security.GetAPIKey.WithID("nope"))
	if err != nil || res.StatusCode != 404 || !res.IsError() {
		t.Fatalf("get unknown: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Security.QueryAPIKeys(es.Security.QueryAPIKeys.WithBody(strings.NewReader(`{"query":{"exists":{"field":"metadata.a"}}}`)))
	if err != nil || res.StatusCode != 200 || body(res.Body)["total"] != float64(1) {
		t.Fatalf("query: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Cluster.PutSettings(strings.NewReader(`{"persistent":{"cluster.remote.signing.certificate_authorities":["ca.crt"]}}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("put settings: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Cluster.RemoteInfo()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("remote info: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Security.InvalidateAPIKey(strings.NewReader(`{"ids":["` + id + `"]}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("invalidate: %v %v", err, res)
	}
	res.Body.Close()

	res, err = es.Nodes.ReloadSecureSettings()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("reload: %v %v", err, res)
	}
	res.Body.Close()

	t.Run("wrong password surfaces 401", func(t *testing.T) {
		cfg := clientConfig(e)
		cfg.Password = "wrong"
		bad, _ := elasticsearch.NewClient(cfg)
		res, err := bad.Info()
		if err != nil || res.StatusCode != 401 {
			t.Fatalf("got %v %v", err, res)
		}
		res.Body.Close()
	})
	t.Run("API key auth", func(t *testing.T) {
		r := e.do("POST", "/_security/api_key", `{"name":"rk"}`)
		cfg := clientConfig(e)
		cfg.Username, cfg.Password, cfg.APIKey = "", "", r.body["encoded"].(string)
		kc, _ := elasticsearch.NewClient(cfg)
		res, err := kc.Security.Authenticate()
		if err != nil || res.StatusCode != 200 || body(res.Body)["authentication_type"] != "api_key" {
			t.Fatalf("got %v %v", err, res)
		}
		res.Body.Close()
	})
}
