package esim

import (
	"reflect"
	"strings"
	"testing"
)

const setPath = "/_cluster/settings"

func TestClusterSettingsPutGet(t *testing.T) {
	e := newEnv(t, "8.14.3")
	events, cancel := e.n.Subscribe()
	defer cancel()
	r := e.do("PUT", setPath, `{"persistent":{"cluster":{"remote":{"my_remote":{"mode":"proxy","proxy_address":"es-remote:9443",
		"server_name":"es-remote.example.com","proxy_socket_connections":18,"skip_unavailable":true}}}}}`)
	want := `{"acknowledged":true,"persistent":{"cluster":{"remote":{"my_remote":{"mode":"proxy","proxy_address":"es-remote:9443",` +
		`"proxy_socket_connections":"18","server_name":"es-remote.example.com","skip_unavailable":"true"}}}},"transient":{}}`
	if string(r.raw) != want {
		t.Fatalf("PUT response:\n got %s\nwant %s", r.raw, want)
	}
	select {
	case <-events:
	default:
		t.Error("no change notification")
	}
	t.Run("flat input and flat_settings", func(t *testing.T) {
		r := e.do("PUT", setPath+"?flat_settings=true", `{"persistent":{"cluster.remote.other.seeds":["a:9300","b:9300"]}}`)
		if string(r.raw) != `{"acknowledged":true,"persistent":{"cluster.remote.other.seeds":["a:9300","b:9300"]},"transient":{}}` {
			t.Errorf("got %s", r.raw)
		}
	})
	t.Run("GET nested and flat", func(t *testing.T) {
		r := e.do("GET", setPath, "")
		if jsonPath(r.body, "persistent.cluster.remote.my_remote.proxy_socket_connections") != "18" ||
			!reflect.DeepEqual(toStrings(jsonPath(r.body, "persistent.cluster.remote.other.seeds")), []string{"a:9300", "b:9300"}) {
			t.Errorf("GET: %s", r.raw)
		}
		r = e.do("GET", setPath+"?flat_settings", "")
		if m := r.body["persistent"].(map[string]any); m["cluster.remote.my_remote.mode"] != "proxy" || len(m) != 6 {
			t.Errorf("GET flat: %s", r.raw)
		}
		r = e.do("GET", setPath+"?include_defaults=true&flat_settings=true", "")
		if jsonPath(r.body, "defaults") == nil || r.body["defaults"].(map[string]any)["cluster.remote.initial_connect_timeout"] != "30s" {
			t.Errorf("defaults: %s", r.raw)
		}
	})
	t.Run("RemoteClusters", func(t *testing.T) {
		rcs := e.n.RemoteClusters()
		if len(rcs) != 2 || rcs[0].Alias != "my_remote" || rcs[0].Mode != "proxy" || rcs[0].ProxyAddress != "es-remote:9443" ||
			rcs[0].ServerName != "es-remote.example.com" || !rcs[0].SkipUnavailable || rcs[0].ProxySocketConnections != 18 ||
			rcs[1].Alias != "other" || rcs[1].Mode != "sniff" || len(rcs[1].Seeds) != 2 || rcs[1].NodeConnections != 3 {
			t.Errorf("RemoteClusters = %+v", rcs)
		}
	})
	t.Run("transient overlays persistent with a deprecation warning", func(t *testing.T) {
		// Each scope is validated on its own too: transient server_name needs a transient proxy mode.
		r := e.do("PUT", setPath, `{"transient":{"cluster.remote.my_remote.server_name":"t.example.com"}}`)
		wantErr(t, r, 400, "illegal_argument_exception",
			`Setting "cluster.remote.my_remote.server_name" cannot be used with the configured "cluster.remote.my_remote.mode" [required=PROXY, configured=SNIFF]`)
		r = e.do("PUT", setPath, `{"transient":{"cluster.remote.my_remote.mode":"proxy","cluster.remote.my_remote.server_name":"t.example.com"}}`)
		if r.status != 200 || !strings.Contains(r.header.Get("Warning"), "[transient settings removal]") {
			t.Fatalf("got %d %s warning %q", r.status, r.raw, r.header.Get("Warning"))
		}
		if e.n.RemoteClusters()[0].ServerName != "t.example.com" {
			t.Error("transient not applied")
		}
		e.do("PUT", setPath, `{"transient":{"cluster.remote.my_remote.*":null}}`)
	})
	t.Run("switch mode nulling the other mode", func(t *testing.T) {
		r := e.do("PUT", setPath, `{"persistent":{"cluster.remote.other.seeds":null,"cluster.remote.other.mode":"proxy","cluster.remote.other.proxy_address":"x:1"}}`)
		if r.status != 200 || e.n.RemoteClusters()[1].Mode != "proxy" {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("wildcard delete", func(t *testing.T) {
		r := e.do("PUT", setPath, `{"persistent":{"cluster.remote.other.*":null}}`)
		if string(r.raw) != `{"acknowledged":true,"persistent":{},"transient":{}}` || len(e.n.RemoteClusters()) != 1 {
			t.Errorf("got %s, remotes %d", r.raw, len(e.n.RemoteClusters()))
		}
	})
	t.Run("allowlisted settings", func(t *testing.T) {
		r := e.do("PUT", setPath, `{"persistent":{"cluster.routing.allocation.enable":"primaries","logger.org.elasticsearch.transport":"TRACE","indices.recovery.max_bytes_per_sec":"100mb"}}`)
		if r.status != 200 {
			t.Errorf("got %d %s", r.status, r.raw)
		}
	})
}

func TestClusterSettingsErrors(t *testing.T) {
	e := newEnv(t, "8.14.3")
	e.do("PUT", setPath, `{"persistent":{"cluster.remote.p.mode":"proxy","cluster.remote.p.proxy_address":"h:1","cluster.remote.p.skip_unavailable":true}}`)
	put := func(name, body, typ, reason string) errCase {
		return errCase{name: name, method: "PUT", path: setPath, body: body, status: 400, typ: typ, reason: reason}
	}
	iaeCase := func(name, body, reason string) errCase { return put(name, body, "illegal_argument_exception", reason) }
	runErrCases(t, e, []errCase{
		put("no body", "", "parse_exception", "request body is required"),
		put("empty", `{}`, "action_request_validation_exception", "Validation Failed: 1: no settings to update;"),
		put("unknown top-level field", `{"persistant":{}}`, "x_content_parse_exception", "[1:2] [cluster_update_settings_request] unknown field [persistant] did you mean [persistent]?"),
		put("persistent not an object", `{"persistent":"x"}`, "x_content_parse_exception", "[1:15] [cluster_update_settings_request] persistent doesn't support values of type: VALUE_STRING"),
		put("object in list", `{"persistent":{"a":[{"b":1}]}}`, "x_content_parse_exception", "[1:15] [cluster_update_settings_request] failed to parse field [persistent]"),
		iaeCase("unknown key", `{"persistent":{"cluster.foo":"x"}}`, "persistent setting [cluster.foo], not recognized"),
		iaeCase("unknown transient key", `{"transient":{"cluster.foo":"x"}}`, "transient setting [cluster.foo], not recognized"),
		iaeCase("dotted alias", `{"persistent":{"cluster.remote.bad.alias.mode":"proxy"}}`, "persistent setting [cluster.remote.bad.alias.mode], not recognized"),
		iaeCase("colon alias", `{"persistent":{"cluster.remote.a:b.mode":"proxy"}}`, "persistent setting [cluster.remote.a:b.mode], not recognized"),
		iaeCase("null unknown key", `{"persistent":{"cluster.foo":null}}`, "persistent setting [cluster.foo], not recognized"),
		iaeCase("credentials", `{"persistent":{"cluster.remote.p.credentials":"abc"}}`, "persistent setting [cluster.remote.p.credentials], not dynamically updateable"),
		iaeCase("static", `{"persistent":{"cluster.remote.initial_connect_timeout":"10s"}}`, "persistent setting [cluster.remote.initial_connect_timeout], not dynamically updateable"),
		iaeCase("wrong mode key", `{"persistent":{"cluster.remote.p.seeds":["a:1"]}}`,
			`Setting "cluster.remote.p.seeds" cannot be used with the configured "cluster.remote.p.mode" [required=SNIFF, configured=PROXY]`),
		iaeCase("server_name in sniff", `{"persistent":{"cluster.remote.s.seeds":["a:1"],"cluster.remote.s.server_name":"x"}}`,
			`Setting "cluster.remote.s.server_name" cannot be used with the configured "cluster.remote.s.mode" [required=PROXY, configured=SNIFF]`),
		iaeCase("switch without nulling", `{"persistent":{"cluster.remote.p.mode":"sniff","cluster.remote.p.seeds":["a:1"]}}`,
			`Setting "cluster.remote.p.proxy_address" cannot be used with the configured "cluster.remote.p.mode" [required=PROXY, configured=SNIFF]`),
		iaeCase("not enabled", `{"persistent":{"cluster.remote.n.skip_unavailable":true}}`, "Cannot configure setting [cluster.remote.n.skip_unavailable] if remote cluster is not enabled."),
		iaeCase("delete enabling key only", `{"persistent":{"cluster.remote.p.proxy_address":null}}`, "Cannot configure setting [cluster.remote.p.skip_unavailable] if remote cluster is not enabled."),
		iaeCase("ping schedule not enabled", `{"persistent":{"cluster.remote.n.transport.ping_schedule":"5s"}}`, "Cannot configure setting [cluster.remote.n.transport.ping_schedule] if remote cluster is not enabled."),
		iaeCase("no colon", `{"persistent":{"cluster.remote.p.proxy_address":"host"}}`, "remote hosts need to be configured as [host:port], found [host] instead"),
		iaeCase("bad port", `{"persistent":{"cluster.remote.p.proxy_address":"host:abc"}}`, "failed to parse port"),
		iaeCase("zero port", `{"persistent":{"cluster.remote.p.proxy_address":"host:0"}}`, "port number must be > 0 but was: [0]"),
		iaeCase("bad seed", `{"persistent":{"cluster.remote.s.seeds":["a:1","b"]}}`, "remote hosts need to be configured as [host:port], found [b] instead"),
		iaeCase("min value", `{"persistent":{"cluster.remote.p.proxy_socket_connections":0}}`, "Failed to parse value [0] for setting [cluster.remote.p.proxy_socket_connections] must be >= 1"),
		iaeCase("not a number", `{"persistent":{"cluster.remote.s.node_connections":"abc"}}`, "Failed to parse value [abc] for setting [cluster.remote.s.node_connections]"),
		iaeCase("bad mode", `{"persistent":{"cluster.remote.p.mode":"bogus"}}`, "No enum constant org.elasticsearch.transport.RemoteConnectionStrategy.ConnectionStrategy.BOGUS"),
		iaeCase("bad bool", `{"persistent":{"cluster.remote.p.skip_unavailable":"yes"}}`, "Failed to parse value [yes] as only [true] or [false] are allowed."),
		iaeCase("list for scalar", `{"persistent":{"cluster.remote.p.mode":["proxy"]}}`, "Found list type value for setting [cluster.remote.p.mode] but but did not expect a list for it."),
		iaeCase("bad compress", `{"persistent":{"cluster.remote.p.transport.compress":"maybe"}}`, "No enum constant org.elasticsearch.transport.Compression.Enabled.MAYBE"),
		iaeCase("bad allocation", `{"persistent":{"cluster.routing.allocation.enable":"some"}}`, "Illegal allocation.enable value [some]"),
		iaeCase("signing before 9.3", `{"persistent":{"cluster.remote.p.signing.certificate":"a.crt"}}`, "persistent setting [cluster.remote.p.signing.certificate], not recognized"),
		iaeCase("short unknown key", `{"persistent":{"a":1}}`, "persistent setting [a], not recognized"),
	})
	t.Run("caused_by and suppressed", func(t *testing.T) {
		r := e.do("PUT", setPath, `{"persistent":{"cluster.remote.s.node_connections":"abc"}}`)
		if typ, reason := causedBy(t, r, 1); typ != "number_format_exception" || reason != `For input string: "abc"` {
			t.Errorf("caused_by %s %s", typ, reason)
		}
		r = e.do("PUT", setPath, `{"persistent":{"cluster.remote.x.skip_unavailable":true,"cluster.remote.y.skip_unavailable":true}}`)
		if got := jsonPath(r.body, "error.suppressed.0.reason"); got != "Cannot configure setting [cluster.remote.y.skip_unavailable] if remote cluster is not enabled." {
			t.Errorf("suppressed = %v", got)
		}
		r = e.do("PUT", setPath, `{"persistent":{"a":[{"b":1}]}}`)
		if typ, reason := causedBy(t, r, 1); typ != "illegal_state_exception" || reason != "only value lists are allowed in serialized settings" {
			t.Errorf("caused_by %s %s", typ, reason)
		}
	})
	t.Run("failed update changes nothing", func(t *testing.T) {
		r := e.do("GET", setPath+"?flat_settings", "")
		if len(r.body["persistent"].(map[string]any)) != 3 {
			t.Errorf("settings changed: %s", r.raw)
		}
	})
	t.Run("GET errors", func(t *testing.T) {
		r := e.do("GET", setPath+"?include_defaults=maybe", "")
		wantErr(t, r, 400, "illegal_argument_exception", "Failed to parse value [maybe] as only [true] or [false] are allowed.")
		r = e.do("GET", setPath+"?master_timeout=5x", "")
		wantErr(t, r, 400, "illegal_argument_exception", "failed to parse setting [master_timeout] with value [5x] as a time value: unit is missing or unrecognized")
	})
}

func TestClusterSettingsSigning93(t *testing.T) {
	e := newEnv(t, "9.3.2")
	r := e.do("PUT", setPath, `{"persistent":{"cluster.remote.a.mode":"proxy","cluster.remote.a.proxy_address":"h:9443",
		"cluster.remote.a.signing.certificate":"signing.crt","cluster.remote.a.signing.key":"signing.key",
		"cluster.remote.signing.certificate_authorities":["ca1.crt","ca2.crt"]}}`)
	if r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	rc := e.n.RemoteClusters()
	if len(rc) != 1 || rc[0].SigningCertificate != "signing.crt" || rc[0].SigningKey != "signing.key" {
		t.Errorf("RemoteClusters = %+v", rc)
	}
	if got := e.n.SigningCertificateAuthorities(); !reflect.DeepEqual(got, []string{"ca1.crt", "ca2.crt"}) {
		t.Errorf("CAs = %v", got)
	}
	r = e.do("PUT", setPath, `{"persistent":{"cluster.remote.a.signing.key.secure_passphrase":"x"}}`)
	wantErr(t, r, 400, "illegal_argument_exception", "persistent setting [cluster.remote.a.signing.key.secure_passphrase], not dynamically updateable")
}

func TestRemoteInfo(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		e := newEnv(t, "8.14.3")
		if r := e.do("GET", "/_remote/info", ""); string(r.raw) != `{}` {
			t.Errorf("got %s", r.raw)
		}
	})
	for _, tc := range []struct {
		version string
		skip    string
	}{{"8.14.3", "false"}, {"8.15.0", "true"}, {"9.3.2", "true"}} {
		t.Run("proxy "+tc.version, func(t *testing.T) {
			e := newEnv(t, tc.version)
			e.n.SetRemoteStatusFunc(func(alias string) RemoteStatus {
				return RemoteStatus{Connected: alias == "my", NumSocketsConnected: 18, HasCredentials: alias == "my"}
			})
			e.do("PUT", setPath, `{"persistent":{"cluster.remote.my.mode":"proxy","cluster.remote.my.proxy_address":"es-remote:9443"}}`)
			r := e.do("GET", "/_remote/info", "")
			want := `{"my":{"connected":true,"mode":"proxy","proxy_address":"es-remote:9443","server_name":"","num_proxy_sockets_connected":18,` +
				`"max_proxy_socket_connections":18,"initial_connect_timeout":"30s","skip_unavailable":` + tc.skip + `,"cluster_credentials":"::es_redacted::"}}`
			if string(r.raw) != want {
				t.Errorf("\n got %s\nwant %s", r.raw, want)
			}
		})
	}
	t.Run("sniff without credentials", func(t *testing.T) {
		e := newEnv(t, "8.19.2")
		e.do("PUT", setPath, `{"persistent":{"cluster.remote.s.seeds":["a:9300"],"cluster.remote.s.node_connections":5,"cluster.remote.s.skip_unavailable":false}}`)
		r := e.do("GET", "/_remote/info", "")
		want := `{"s":{"connected":false,"mode":"sniff","seeds":["a:9300"],"num_nodes_connected":0,"max_connections_per_cluster":5,` +
			`"initial_connect_timeout":"30s","skip_unavailable":false}}`
		if string(r.raw) != want {
			t.Errorf("\n got %s\nwant %s", r.raw, want)
		}
	})
}
