package elastic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var searchLogs = Access{Search: []SearchAccess{{Names: []string{"logs-*"}}}}

func TestCreateCrossClusterKey(t *testing.T) {
	dls := Access{
		Search: []SearchAccess{{
			Names:         []string{"logs-*", "metrics-*"},
			Query:         json.RawMessage(`{"term":{"category":"shared"}}`),
			FieldSecurity: &FieldSecurity{Grant: []string{"*"}, Except: []string{"secret"}},
		}},
	}
	tests := []struct {
		name       string
		version    string
		req        CreateKeyRequest
		wantExpiry time.Duration // 0: never
		wantStatus int           // 0: success
		wantType   string
		wantReason string
	}{
		{name: "never expires", version: "9.3.2", req: CreateKeyRequest{Name: "ecklink-p-a", Access: searchLogs}},
		{name: "expiration seconds", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: searchLogs, Expiration: 120 * time.Second}, wantExpiry: 120 * time.Second},
		{name: "expiration days", version: "8.14.3", req: CreateKeyRequest{Name: "k", Access: searchLogs, Expiration: 30 * 24 * time.Hour}, wantExpiry: 30 * 24 * time.Hour},
		{name: "expiration rounded up", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: searchLogs, Expiration: 1500 * time.Millisecond}, wantExpiry: 2 * time.Second},
		{name: "dls fls and metadata", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: dls, Metadata: map[string]any{"managed-by": "ecklink", "n": 1}}},
		{name: "replication", version: "8.19.2", req: CreateKeyRequest{Name: "k", Access: Access{Replication: []ReplicationAccess{{Names: []string{"leader"}}}}}},
		{name: "certificate identity", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: searchLogs, CertificateIdentity: ptr("CN=.*.example.com")}},
		{
			name: "empty access", version: "9.3.2", req: CreateKeyRequest{Name: "k"},
			wantStatus: 400, wantType: "illegal_argument_exception", wantReason: "must specify non-empty access for either [search] or [replication]",
		},
		{
			name: "name with underscore", version: "9.3.2", req: CreateKeyRequest{Name: "_k", Access: searchLogs},
			wantStatus: 400, wantType: "action_request_validation_exception", wantReason: "api key name may not begin with an underscore",
		},
		{
			name: "reserved metadata", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: searchLogs, Metadata: map[string]any{"_x": "y"}},
			wantStatus: 400, wantType: "action_request_validation_exception", wantReason: "API key metadata keys may not start with [_]",
		},
		{
			name: "dls on replication", version: "9.3.2",
			req:        CreateKeyRequest{Name: "k", Access: Access{Search: dls.Search, Replication: []ReplicationAccess{{Names: []string{"x"}}}}},
			wantStatus: 400, wantType: "illegal_argument_exception", wantReason: "search does not support document or field level security if replication is assigned",
		},
		{
			name: "bad certificate identity", version: "9.3.2", req: CreateKeyRequest{Name: "k", Access: searchLogs, CertificateIdentity: ptr("CN=(")},
			wantStatus: 400, wantType: "illegal_argument_exception", wantReason: "Invalid certificate_identity format",
		},
		{
			name: "certificate identity before 9.3", version: "9.2.0", req: CreateKeyRequest{Name: "k", Access: searchLogs, CertificateIdentity: ptr("CN=x")},
			wantStatus: 400, wantReason: "certificate_identity",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.version)
			k, err := e.c.CreateCrossClusterKey(context.Background(), tt.req)
			if tt.wantStatus != 0 {
				checkAPIError(t, err, tt.wantStatus, tt.wantType, tt.wantReason)
				return
			}
			if err != nil {
				t.Fatalf("CreateCrossClusterKey: %v", err)
			}
			if k.Name != tt.req.Name || k.ID == "" {
				t.Errorf("key = %+v", k)
			}
			dec, err := base64.StdEncoding.DecodeString(k.Encoded.Value())
			if err != nil || !strings.HasPrefix(string(dec), k.ID+":") {
				t.Errorf("encoded does not decode to id:secret: %v", err)
			}
			if want := e.clock.Now().Add(tt.wantExpiry); (tt.wantExpiry == 0) != k.Expiration.IsZero() || (tt.wantExpiry != 0 && !k.Expiration.Equal(want)) {
				t.Errorf("expiration = %v, want %v after now (0 = never)", k.Expiration, tt.wantExpiry)
			}
			info, ok := e.node.APIKey(k.ID)
			if !ok || info.Type != "cross_cluster" {
				t.Fatalf("esim has no cross-cluster key %s", k.ID)
			}
			if (tt.req.CertificateIdentity == nil) != (info.CertificateIdentity == nil) {
				t.Errorf("certificate identity = %v, want %v", info.CertificateIdentity, tt.req.CertificateIdentity)
			}
			keys, err := e.c.ListKeys(context.Background(), KeyQuery{})
			if err != nil || len(keys) != 1 {
				t.Fatalf("ListKeys = %v, %v", keys, err)
			}
			if keys[0].Access == nil || AccessHash(*keys[0].Access) != AccessHash(tt.req.Access) {
				t.Errorf("listed access = %s, want %s", mustMarshal(keys[0].Access), mustMarshal(tt.req.Access))
			}
		})
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkAPIError(t *testing.T, err error, status int, typ, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %d %s", status, typ)
	}
	if !strings.HasPrefix(err.Error(), "failed to ") {
		t.Errorf("err = %q, want it to start with \"failed to \"", err)
	}
	ae, ok := asAPIError(err)
	if !ok {
		t.Fatalf("err = %v (%T), want *APIError", err, err)
	}
	if ae.Status != status || (typ != "" && ae.Type != typ) || !strings.Contains(ae.Reason, reason) {
		t.Errorf("APIError = %+v, want %d %s containing %q", ae, status, typ, reason)
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}
}

func TestUpdateCrossClusterKey(t *testing.T) {
	replication := Access{Replication: []ReplicationAccess{{Names: []string{"leader-*"}}}}
	tests := []struct {
		name        string
		version     string
		id          string // "" uses the created key
		req         UpdateKeyRequest
		wantUpdated bool
		wantStatus  int // -1: local error
		wantType    string
		wantReason  string
		check       func(t *testing.T, k Key)
	}{
		{
			name: "access", version: "9.3.2", req: UpdateKeyRequest{Access: &replication}, wantUpdated: true,
			check: func(t *testing.T, k Key) {
				if k.Access == nil || AccessHash(*k.Access) != AccessHash(replication) {
					t.Errorf("access = %s", mustMarshal(k.Access))
				}
			},
		},
		{name: "same access", version: "9.3.2", req: UpdateKeyRequest{Access: &searchLogs, Metadata: map[string]any{"a": "1"}}, wantUpdated: false},
		{
			name: "metadata only", version: "8.19.2", req: UpdateKeyRequest{Metadata: map[string]any{"a": "2"}}, wantUpdated: true,
			check: func(t *testing.T, k Key) {
				if k.Metadata["a"] != "2" || k.Access == nil || AccessHash(*k.Access) != AccessHash(searchLogs) {
					t.Errorf("key = %+v", k)
				}
			},
		},
		{
			name: "clear metadata", version: "9.3.2", req: UpdateKeyRequest{Metadata: map[string]any{}}, wantUpdated: true,
			check: func(t *testing.T, k Key) {
				if len(k.Metadata) != 0 {
					t.Errorf("metadata = %v", k.Metadata)
				}
			},
		},
		{
			name: "set certificate identity", version: "9.3.2", req: UpdateKeyRequest{CertificateIdentity: ptr(ptr("CN=b"))}, wantUpdated: true,
			check: func(t *testing.T, k Key) {
				if k.CertificateIdentity == nil || *k.CertificateIdentity != "CN=b" {
					t.Errorf("certificate identity = %v", k.CertificateIdentity)
				}
			},
		},
		{
			name: "clear certificate identity", version: "9.3.2", req: UpdateKeyRequest{CertificateIdentity: ptr[*string](nil)}, wantUpdated: true,
			check: func(t *testing.T, k Key) {
				if k.CertificateIdentity != nil {
					t.Errorf("certificate identity = %q, want none", *k.CertificateIdentity)
				}
			},
		},
		{
			name: "unknown id", version: "9.3.2", id: "nosuchkey00000000000", req: UpdateKeyRequest{Access: &replication},
			wantStatus: 404, wantType: "resource_not_found_exception", wantReason: "no API key owned by requesting user found for ID [nosuchkey00000000000]",
		},
		{
			name: "empty access", version: "9.3.2", req: UpdateKeyRequest{Access: &Access{}},
			wantStatus: 400, wantReason: "must specify non-empty access",
		},
		{name: "nothing to update", version: "9.3.2", req: UpdateKeyRequest{}, wantStatus: -1},
		{name: "blank id", version: "9.3.2", id: " ", req: UpdateKeyRequest{Access: &replication}, wantStatus: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.version)
			ctx := context.Background()
			req := CreateKeyRequest{Name: "k", Access: searchLogs, Metadata: map[string]any{"a": "1"}}
			if tt.version >= "9.3" {
				req.CertificateIdentity = ptr("CN=a")
			}
			created, err := e.c.CreateCrossClusterKey(ctx, req)
			if err != nil {
				t.Fatalf("CreateCrossClusterKey: %v", err)
			}
			id := tt.id
			if id == "" {
				id = created.ID
			}
			updated, err := e.c.UpdateCrossClusterKey(ctx, id, tt.req)
			switch {
			case tt.wantStatus == -1:
				if err == nil || IsNotFound(err) {
					t.Fatalf("err = %v, want a local error", err)
				}
				return
			case tt.wantStatus != 0:
				checkAPIError(t, err, tt.wantStatus, tt.wantType, tt.wantReason)
				if tt.wantStatus == 404 && !IsNotFound(err) {
					t.Errorf("IsNotFound(%v) = false", err)
				}
				return
			case err != nil:
				t.Fatalf("UpdateCrossClusterKey: %v", err)
			}
			if updated != tt.wantUpdated {
				t.Errorf("updated = %v, want %v", updated, tt.wantUpdated)
			}
			keys, err := e.c.ListKeys(ctx, KeyQuery{})
			if err != nil || len(keys) != 1 {
				t.Fatalf("ListKeys = %v, %v", keys, err)
			}
			if tt.check != nil {
				tt.check(t, keys[0])
			}
		})
	}
}

func TestInvalidateKeys(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		k, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: fmt.Sprintf("k%d", i), Access: searchLogs})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	tests := []struct {
		name    string
		ids     []string
		want    []string
		wantErr bool
	}{
		{name: "none", ids: nil},
		{name: "two", ids: ids[:2], want: ids[:2]},
		{name: "twice", ids: ids[:2]},
		{name: "unknown", ids: []string{"nosuchkey00000000000"}},
		{name: "mixed", ids: []string{ids[0], ids[2], "nosuchkey00000000000"}, want: ids[2:]},
		{name: "blank", ids: []string{""}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.c.InvalidateKeys(ctx, tt.ids)
			if tt.wantErr {
				if err == nil {
					t.Fatal("err = nil")
				}
				return
			}
			if err != nil {
				t.Fatalf("InvalidateKeys: %v", err)
			}
			if fmt.Sprint(res.Invalidated) != fmt.Sprint(tt.want) && !(len(res.Invalidated) == 0 && len(tt.want) == 0) {
				t.Errorf("invalidated = %v, want %v", res.Invalidated, tt.want)
			}
		})
	}
	for _, id := range ids {
		if k, _ := e.node.APIKey(id); !k.Invalidated {
			t.Errorf("key %s is not invalidated", id)
		}
	}
}

func TestListKeys(t *testing.T) {
	e := newEnv(t, "9.3.2")
	e.c.pageSize = 10
	ctx := context.Background()
	create := func(name string, md map[string]any, exp time.Duration) string {
		t.Helper()
		k, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: name, Access: searchLogs, Metadata: md, Expiration: exp})
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	var peerA []string
	for i := range 27 { // several keys per millisecond: paging must still be exact
		if i%3 == 0 {
			e.clock.Advance(time.Millisecond)
		}
		peerA = append(peerA, create(fmt.Sprintf("ecklink-a-%02d", i), map[string]any{"managed-by": "ecklink", "peer": "a"}, 0))
	}
	other := create("ecklink-b-00", map[string]any{"managed-by": "ecklink", "peer": "b"}, 0)
	create("eck-x-y-z", map[string]any{"managed-by": "eck"}, 0)
	expiring := create("ecklink-b-01", map[string]any{"managed-by": "ecklink", "peer": "b"}, time.Minute)
	if _, err := e.c.InvalidateKeys(ctx, []string{peerA[5]}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)

	tests := []struct {
		name string
		q    KeyQuery
		want int
		has  []string
		not  []string
	}{
		{name: "all", q: KeyQuery{}, want: 30},
		{name: "prefix", q: KeyQuery{NamePrefix: "ecklink-"}, want: 29},
		{name: "metadata", q: KeyQuery{Metadata: map[string]string{"managed-by": "ecklink", "peer": "a"}}, want: 27, has: peerA},
		{name: "metadata and prefix", q: KeyQuery{NamePrefix: "ecklink-b", Metadata: map[string]string{"peer": "b"}}, want: 2, has: []string{other, expiring}},
		{name: "active only", q: KeyQuery{NamePrefix: "ecklink-", ActiveOnly: true}, want: 27, not: []string{peerA[5], expiring}},
		{name: "no match", q: KeyQuery{Metadata: map[string]string{"peer": "zzz"}}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := e.c.ListKeys(ctx, tt.q)
			if err != nil {
				t.Fatalf("ListKeys: %v", err)
			}
			got := map[string]Key{}
			for _, k := range keys {
				if _, dup := got[k.ID]; dup {
					t.Errorf("key %s listed twice", k.ID)
				}
				got[k.ID] = k
			}
			if len(keys) != tt.want {
				t.Errorf("got %d keys, want %d", len(keys), tt.want)
			}
			for _, id := range tt.has {
				if _, ok := got[id]; !ok {
					t.Errorf("key %s missing", id)
				}
			}
			for _, id := range tt.not {
				if _, ok := got[id]; ok {
					t.Errorf("key %s listed", id)
				}
			}
			for i := 1; i < len(keys); i++ {
				if keys[i].Creation.Before(keys[i-1].Creation) {
					t.Errorf("keys not oldest first at %d", i)
				}
			}
		})
	}
	keys, _ := e.c.ListKeys(ctx, KeyQuery{Metadata: map[string]string{"peer": "b"}})
	for _, k := range keys {
		if k.ID == expiring && (k.Expiration.IsZero() || k.Type != "cross_cluster" || k.Metadata["peer"] != "b") {
			t.Errorf("expiring key = %+v", k)
		}
	}
}

// fakeES answers each path with a fixed 200 body, as Elasticsearch would.
func fakeES(t *testing.T, bodies map[string]string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{URL: srv.URL, Username: "elastic", Password: Secret(testPassword)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInvalidateKeysErrorDetails(t *testing.T) {
	c := fakeES(t, map[string]string{"/_security/api_key": `{"invalidated_api_keys":["a"],"previously_invalidated_api_keys":[],"error_count":1,
		"error_details":[{"type":"security_exception","reason":"Cannot invalidate cross-cluster API key [b]. This requires [manage_security] cluster privilege or higher"}]}`})
	res, err := c.InvalidateKeys(context.Background(), []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), "failed to invalidate 1 of 2 API keys") || !strings.Contains(err.Error(), "Cannot invalidate cross-cluster API key [b]") {
		t.Fatalf("err = %v", err)
	}
	if !IsForbidden(err) || ErrorType(err) != "security_exception" || Retryable(err) {
		t.Errorf("classification of %v is wrong", err)
	}
	if res == nil || len(res.Invalidated) != 1 || res.Invalidated[0] != "a" {
		t.Errorf("partial result = %+v", res)
	}
}

func TestListKeysPagingStuck(t *testing.T) {
	var page strings.Builder
	page.WriteString(`{"total":200,"count":100,"api_keys":[`)
	for i := range 100 {
		if i > 0 {
			page.WriteString(",")
		}
		fmt.Fprintf(&page, `{"id":"k%d","name":"n","type":"cross_cluster","creation":1,"invalidated":false,"metadata":{},"_sort":[1,0]}`, i)
	}
	page.WriteString("]}")
	c := fakeES(t, map[string]string{"/_security/_query/api_key": page.String()})
	if _, err := c.ListKeys(context.Background(), KeyQuery{}); err == nil || !strings.Contains(err.Error(), "did not advance") {
		t.Fatalf("err = %v, want paging to stop", err)
	}
}

func TestListKeysPages(t *testing.T) {
	var queries atomic.Int32
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/_security/_query/api_key" {
				queries.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, "8.19.2", count)
	e.c.pageSize = 10
	ctx := context.Background()
	for i := range 25 {
		if _, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: fmt.Sprintf("k%d", i), Access: searchLogs}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := e.c.ListKeys(ctx, KeyQuery{ActiveOnly: true})
	if err != nil || len(keys) != 25 {
		t.Fatalf("ListKeys = %d keys, %v", len(keys), err)
	}
	if n := queries.Load(); n != 3 {
		t.Errorf("%d query requests, want 3 pages", n)
	}
	for i, k := range keys {
		if k.Name != fmt.Sprintf("k%d", i) {
			t.Errorf("keys[%d] = %s, want creation order", i, k.Name)
		}
	}
}

// TestKeyWrites: every API key write made through the client moves KeyWrites (twice: started
// and ended), failed ones too; reads and requests that send nothing do not.
func TestKeyWrites(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	k, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "base", Access: searchLogs})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"ecklink": map[string]any{"peer": "east"}}
	for _, tc := range []struct {
		name string
		op   func() error
		want uint64
	}{
		{"create", func() error {
			_, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "k", Access: searchLogs})
			return err
		}, 2},
		{"update", func() error {
			_, err := e.c.UpdateCrossClusterKey(ctx, k.ID, UpdateKeyRequest{Metadata: meta})
			return err
		}, 2},
		{"update of an unknown key", func() error {
			_, err := e.c.UpdateCrossClusterKey(ctx, "nosuchkey00000000000", UpdateKeyRequest{Metadata: meta})
			if err == nil {
				return errors.New("no error")
			}
			return nil
		}, 2},
		{"invalidate", func() error { _, err := e.c.InvalidateKeys(ctx, []string{k.ID}); return err }, 2},
		{"invalidate nothing", func() error { _, err := e.c.InvalidateKeys(ctx, nil); return err }, 0},
		{"list", func() error { _, err := e.c.ListKeys(ctx, KeyQuery{ActiveOnly: true}); return err }, 0},
		{"get", func() error { _, err := e.c.GetKey(ctx, k.ID); return err }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.c.KeyWrites()
			if err := tc.op(); err != nil {
				t.Fatal(err)
			}
			if got := e.c.KeyWrites() - before; got != tc.want {
				t.Errorf("KeyWrites moved by %d, want %d", got, tc.want)
			}
		})
	}
}
