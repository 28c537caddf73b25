package elastic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/ecklink/ecklink/test/esim"
)

// remoteKeys returns the persistent cluster.remote.* keys esim holds.
func remoteKeys(t *testing.T, e *env) []string {
	t.Helper()
	status, body := e.raw(t, "GET", "/_cluster/settings?flat_settings=true", "")
	if status != 200 {
		t.Fatalf("GET /_cluster/settings = %d %s", status, body)
	}
	var res struct {
		Persistent map[string]any `json:"persistent"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range res.Persistent {
		if strings.HasPrefix(k, "cluster.remote.") {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestPutRemoteDeleteRemote(t *testing.T) {
	for _, version := range []string{"8.14.3", "9.3.2"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t, version)
			ctx := context.Background()
			want := RemoteSettings{ProxyAddress: "lb.example.com:9443", ServerName: "logs-es-remote-cluster.data.svc", SkipUnavailable: ptr(true), ProxySocketConnections: ptr(6)}
			changed, err := e.c.PutRemote(ctx, "eu-logs", want)
			if err != nil || !changed {
				t.Fatalf("PutRemote = %v, %v", changed, err)
			}
			all, err := e.c.GetRemoteSettings(ctx)
			if err != nil {
				t.Fatalf("GetRemoteSettings: %v", err)
			}
			got := all["eu-logs"]
			if len(all) != 1 || got.Mode != "proxy" || got.ProxyAddress != want.ProxyAddress || got.ServerName != want.ServerName ||
				got.SkipUnavailable == nil || !*got.SkipUnavailable || got.ProxySocketConnections == nil || *got.ProxySocketConnections != 6 {
				t.Errorf("GetRemoteSettings = %+v", all)
			}
			info, err := e.c.RemoteInfo(ctx)
			if err != nil {
				t.Fatalf("RemoteInfo: %v", err)
			}
			if ri := info["eu-logs"]; ri.Mode != "proxy" || ri.ProxyAddress != want.ProxyAddress || ri.ServerName != want.ServerName || ri.Connected || !ri.SkipUnavailable {
				t.Errorf("RemoteInfo = %+v", info)
			}
			if changed, err := e.c.PutRemote(ctx, "eu-logs", want); err != nil || changed {
				t.Errorf("second PutRemote = %v, %v; want no change", changed, err)
			}
			// Dropping the server name nulls it; unset skip_unavailable is left.
			changed, err = e.c.PutRemote(ctx, "eu-logs", RemoteSettings{ProxyAddress: "lb2.example.com:9443"})
			if err != nil || !changed {
				t.Fatalf("PutRemote = %v, %v", changed, err)
			}
			all, _ = e.c.GetRemoteSettings(ctx)
			if got := all["eu-logs"]; got.ServerName != "" || got.ProxyAddress != "lb2.example.com:9443" || got.SkipUnavailable == nil {
				t.Errorf("after update = %+v", got)
			}
			// A key PutRemote does not manage must also go on delete.
			if status, body := e.raw(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.eu-logs.transport.compress":"true"}}`); status != 200 {
				t.Fatalf("PUT = %d %s", status, body)
			}
			deleted, err := e.c.DeleteRemote(ctx, "eu-logs")
			if err != nil || !deleted {
				t.Fatalf("DeleteRemote = %v, %v", deleted, err)
			}
			if keys := remoteKeys(t, e); len(keys) != 0 {
				t.Errorf("keys left after DeleteRemote: %v", keys)
			}
			if info, err := e.c.RemoteInfo(ctx); err != nil || len(info) != 0 {
				t.Errorf("RemoteInfo after delete = %v, %v", info, err)
			}
			if deleted, err := e.c.DeleteRemote(ctx, "eu-logs"); err != nil || deleted {
				t.Errorf("second DeleteRemote = %v, %v", deleted, err)
			}
		})
	}
}

func TestPutRemoteFromSniff(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	sniff := `{"persistent":{"cluster":{"remote":{"old":{"seeds":["10.0.0.1:9300","10.0.0.2:9300"],"node_connections":2,"skip_unavailable":false,"transport":{"ping_schedule":"30s"}}}}}}`
	if status, body := e.raw(t, "PUT", "/_cluster/settings", sniff); status != 200 {
		t.Fatalf("PUT = %d %s", status, body)
	}
	all, err := e.c.GetRemoteSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := all["old"]
	if !reflect.DeepEqual(old.Seeds, []string{"10.0.0.1:9300", "10.0.0.2:9300"}) || old.NodeConnections == nil || *old.NodeConnections != 2 ||
		old.SkipUnavailable == nil || *old.SkipUnavailable || old.Other["transport.ping_schedule"] != "30s" {
		t.Fatalf("sniff settings = %+v", old)
	}
	if _, err := e.c.PutRemote(ctx, "old", RemoteSettings{ProxyAddress: "lb:9443", ServerName: "x.svc"}); err != nil {
		t.Fatalf("PutRemote: %v", err)
	}
	rc := e.node.RemoteClusters()
	if len(rc) != 1 || rc[0].Mode != "proxy" || rc[0].ProxyAddress != "lb:9443" || len(rc[0].Seeds) != 0 || rc[0].PingSchedule != "30s" {
		t.Errorf("esim remote clusters = %+v", rc)
	}
	if deleted, err := e.c.DeleteRemote(ctx, "old"); err != nil || !deleted {
		t.Fatalf("DeleteRemote = %v, %v", deleted, err)
	}
	if keys := remoteKeys(t, e); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
}

func TestPutRemoteErrors(t *testing.T) {
	tests := []struct {
		name       string
		alias      string
		rs         RemoteSettings
		wantStatus int // 0: local error
		wantReason string
	}{
		{name: "alias with dot", alias: "a.b", rs: RemoteSettings{ProxyAddress: "h:9443"}},
		{name: "alias with colon", alias: "a:b", rs: RemoteSettings{ProxyAddress: "h:9443"}},
		{name: "empty alias", alias: "", rs: RemoteSettings{ProxyAddress: "h:9443"}},
		{name: "no address", alias: "a", rs: RemoteSettings{}},
		{name: "sniff", alias: "a", rs: RemoteSettings{Mode: "sniff", ProxyAddress: "h:9443"}},
		{name: "bad port", alias: "a", rs: RemoteSettings{ProxyAddress: "h:x"}, wantStatus: 400, wantReason: "failed to parse port"},
		{name: "socket connections", alias: "a", rs: RemoteSettings{ProxyAddress: "h:1", ProxySocketConnections: ptr(0)}, wantStatus: 400, wantReason: "must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "9.3.2")
			_, err := e.c.PutRemote(context.Background(), tt.alias, tt.rs)
			if tt.wantStatus == 0 {
				if _, isAPI := asAPIError(err); err == nil || isAPI {
					t.Fatalf("err = %v, want a local error", err)
				}
				return
			}
			checkAPIError(t, err, tt.wantStatus, "illegal_argument_exception", tt.wantReason)
			if keys := remoteKeys(t, e); len(keys) != 0 {
				t.Errorf("keys left after failed put: %v", keys)
			}
		})
	}
}

func TestParseRemotes(t *testing.T) {
	var nested map[string]any
	_ = json.Unmarshal([]byte(`{"cluster":{"remote":{
		"initial_connect_timeout":"30s","node":{"attr":"gateway"},
		"signing":{"certificate_authorities":["a.crt"]},
		"a":{"mode":"PROXY","proxy_address":"h:1","skip_unavailable":"true","proxy_socket_connections":"18","signing":{"key":"k.pem"}}}},
		"cluster.remote.b.seeds":"h1:9300,h2:9300","cluster.remote.b.mode":"sniff","indices.x":"y"}`), &nested)
	flat := map[string]any{}
	flatten("", nested, flat)
	got, err := parseRemotes(flat)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("aliases = %v, want a and b only", got)
	}
	a := got["a"]
	if a.Mode != "proxy" || a.ProxyAddress != "h:1" || !*a.SkipUnavailable || *a.ProxySocketConnections != 18 || a.Other["signing.key"] != "k.pem" {
		t.Errorf("a = %+v", a)
	}
	if b := got["b"]; b.Mode != "sniff" || !reflect.DeepEqual(b.Seeds, []string{"h1:9300", "h2:9300"}) {
		t.Errorf("b = %+v", b)
	}
	if _, err := parseRemotes(map[string]any{"cluster.remote.a.skip_unavailable": "maybe"}); err == nil ||
		!strings.Contains(err.Error(), "cluster.remote.a.skip_unavailable") {
		t.Errorf("err = %v, want it to name the key", err)
	}
}

func TestRemoteInfo(t *testing.T) {
	e := newEnv(t, "9.3.2")
	ctx := context.Background()
	e.node.SetRemoteStatusFunc(func(alias string) esim.RemoteStatus {
		if alias == "up" {
			return esim.RemoteStatus{Connected: true, NumSocketsConnected: 18, HasCredentials: true}
		}
		return esim.RemoteStatus{}
	})
	for _, alias := range []string{"up", "down"} {
		if _, err := e.c.PutRemote(ctx, alias, RemoteSettings{ProxyAddress: alias + ":9443"}); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := e.raw(t, "PUT", "/_cluster/settings", `{"persistent":{"cluster.remote.sn.seeds":["s:9300"]}}`); status != 200 {
		t.Fatalf("PUT = %d %s", status, body)
	}
	info, err := e.c.RemoteInfo(ctx)
	if err != nil {
		t.Fatalf("RemoteInfo: %v", err)
	}
	want := map[string]RemoteInfo{
		"up":   {Connected: true, Mode: "proxy", ProxyAddress: "up:9443", NumSocketsConnected: 18, SkipUnavailable: true, HasCredentials: true},
		"down": {Mode: "proxy", ProxyAddress: "down:9443", SkipUnavailable: true},
		"sn":   {Mode: "sniff", Seeds: []string{"s:9300"}, SkipUnavailable: true},
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("RemoteInfo =\n%+v\nwant\n%+v", info, want)
	}
}

// TestPutRemoteOverReadsNothing: against settings read once, configuring many aliases costs a
// PUT for each alias that differs and no read, and nothing for one already up to date.
func TestPutRemoteOverReadsNothing(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	e := newEnv(t, "9.3.2", func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls[r.Method]++
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	current, err := e.c.GetRemoteSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aliases := []string{"a", "b", "c"}
	for _, alias := range aliases {
		if changed, err := e.c.PutRemoteOver(ctx, alias, RemoteSettings{ProxyAddress: "lb.example.com:9443"}, current); err != nil || !changed {
			t.Fatalf("PutRemoteOver(%s) = %v, %v; want a write", alias, changed, err)
		}
	}
	if current, err = e.c.GetRemoteSettings(ctx); err != nil {
		t.Fatal(err)
	}
	for _, alias := range aliases {
		if changed, err := e.c.PutRemoteOver(ctx, alias, RemoteSettings{ProxyAddress: "lb.example.com:9443"}, current); err != nil || changed {
			t.Fatalf("PutRemoteOver(%s) again = %v, %v; want nothing written", alias, changed, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["GET"] != 2 || calls["PUT"] != len(aliases) {
		t.Fatalf("requests %v: want the 2 reads of the test and %d PUTs", calls, len(aliases))
	}
}

// TestPutRemotesOver: the aliases that differ go in one request (up to MaxRemotesPerPut); when
// Elasticsearch refuses a request, its aliases are written one by one, so only the refused one
// is left out.
func TestPutRemotesOver(t *testing.T) {
	many := func(n int) map[string]RemoteSettings {
		out := map[string]RemoteSettings{}
		for i := range n {
			out[fmt.Sprintf("r%03d", i)] = RemoteSettings{ProxyAddress: "lb.example.com:9443"}
		}
		return out
	}
	tests := []struct {
		name    string
		before  map[string]RemoteSettings // configured first, one by one
		wants   map[string]RemoteSettings
		puts    int
		written int
		wantErr string
	}{
		{name: "new and up to date", before: map[string]RemoteSettings{"a": {ProxyAddress: "lb.example.com:9443"}},
			wants: map[string]RemoteSettings{"a": {ProxyAddress: "lb.example.com:9443"}, "b": {ProxyAddress: "lb.example.com:9443"}, "c": {ProxyAddress: "other.example.com:9443", ServerName: "c.example.com"}},
			puts:  1, written: 2},
		{name: "nothing to write", before: map[string]RemoteSettings{"a": {ProxyAddress: "lb.example.com:9443"}},
			wants: map[string]RemoteSettings{"a": {ProxyAddress: "lb.example.com:9443"}}, puts: 0, written: 0},
		{name: "chunked", wants: many(MaxRemotesPerPut + 20), puts: 2, written: MaxRemotesPerPut + 20},
		{name: "one refused", wants: map[string]RemoteSettings{"a": {ProxyAddress: "lb.example.com:9443"}, "bad": {ProxyAddress: "no port"}, "c": {ProxyAddress: "lb.example.com:9443"}},
			puts: 4, written: 2, wantErr: "bad"}, // the batch, then a, bad, c
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			puts := 0
			e := newEnv(t, "9.3.2", func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPut {
						mu.Lock()
						puts++
						mu.Unlock()
					}
					h.ServeHTTP(w, r)
				})
			})
			ctx := context.Background()
			for alias, s := range tc.before {
				if _, err := e.c.PutRemote(ctx, alias, s); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			puts = 0
			mu.Unlock()
			current, err := e.c.GetRemoteSettings(ctx)
			if err != nil {
				t.Fatal(err)
			}
			written, err := e.c.PutRemotesOver(ctx, tc.wants, current)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
			}
			mu.Lock()
			if puts != tc.puts || len(written) != tc.written {
				t.Errorf("%d PUTs, %d aliases written; want %d and %d", puts, len(written), tc.puts, tc.written)
			}
			mu.Unlock()
			after, err := e.c.GetRemoteSettings(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for alias, want := range tc.wants {
				if alias == tc.wantErr {
					continue
				}
				if got := after[alias]; got.ProxyAddress != want.ProxyAddress || got.ServerName != want.ServerName || got.Mode != "proxy" {
					t.Errorf("alias %s: %+v, want %+v", alias, got, want)
				}
			}
		})
	}
}
