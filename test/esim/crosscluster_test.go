package esim

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestAuthenticateCrossCluster(t *testing.T) {
	e := newEnv(t, "8.19.2")
	ccID, ccEnc := e.createCCKey(`{"name":"cc","access":{"search":[{"names":["a"]}]}}`)
	restID, restEnc := e.createRestKey(`{"name":"rest"}`)
	expID, expEnc := e.createCCKey(`{"name":"exp","access":{"search":[{"names":["a"]}]},"expiration":"1m"}`)
	invID, invEnc := e.createCCKey(`{"name":"inv","access":{"search":[{"names":["a"]}]}}`)
	e.do("DELETE", keysPath, `{"ids":["`+invID+`"]}`)
	e.clock.Advance(time.Minute) // expiration == now counts as expired
	_ = expID
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	cases := []struct {
		name, header       string
		status             int
		typ, reason, cause string
	}{
		{"missing header", "", 400, "illegal_argument_exception",
			"Cross cluster requests through the dedicated remote cluster server port require transport header [_cross_cluster_access_credentials] but none found. ...", ""},
		{"not an ApiKey credential", "Basic " + b64("a:b"), 400, "illegal_argument_exception", "failed to extract credentials from headers",
			"cross cluster access header [_cross_cluster_access_credentials] value must be a valid API key credential"},
		{"bad base64", "ApiKey %%%", 400, "illegal_argument_exception", "failed to extract credentials from headers", "Illegal base64 character 25"},
		{"no colon", "ApiKey " + b64("abc"), 400, "illegal_argument_exception", "failed to extract credentials from headers", "invalid ApiKey value"},
		{"unknown id", "ApiKey " + b64("nosuch:secret"), 401, "security_exception", "unable to find apikey with id nosuch", ""},
		{"wrong secret", "ApiKey " + b64(ccID+":wrong"), 401, "security_exception", "invalid credentials for API key [" + ccID + "]", ""},
		{"expired", "ApiKey " + expEnc, 401, "security_exception", "api key is expired", ""},
		{"invalidated", "ApiKey " + invEnc, 401, "security_exception", "api key [" + invID + "] has been invalidated", ""},
		{"rest key", "ApiKey " + restEnc, 401, "security_exception",
			"authentication expected API key type of [cross_cluster], but API key [" + restID + "] has type [rest]", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.n.AuthenticateCrossCluster(tc.header)
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if id != "" || ee.Status != tc.status || ee.Type != tc.typ || !reasonMatches(ee.Reason, tc.reason) {
				t.Errorf("got id %q %d %s %q", id, ee.Status, ee.Type, ee.Reason)
			}
			if tc.cause != "" && (ee.CausedBy == nil || ee.CausedBy.Reason != tc.cause) {
				t.Errorf("caused_by = %+v", ee.CausedBy)
			}
			if len(ee.JSON()) == 0 {
				t.Error("empty JSON")
			}
		})
	}
	t.Run("success", func(t *testing.T) {
		for _, h := range []string{"ApiKey " + ccEnc, "apikey " + ccEnc} {
			id, err := e.n.AuthenticateCrossCluster(h)
			if err != nil || id != ccID {
				t.Errorf("got %q %v", id, err)
			}
		}
	})
}

func TestSubscribeAndViews(t *testing.T) {
	e := newEnv(t, "8.14.3")
	ch, cancel := e.n.Subscribe()
	ch2, cancel2 := e.n.Subscribe()
	cancel2()
	cancel2() // idempotent
	id, _ := e.createCCKey(`{"name":"k","access":{"search":[{"names":["a"],"field_security":{"grant":["*"],"except":["secret"]}}]},"metadata":{"a":{"b":[1,"x"]}}}`)
	e.createCCKey(`{"name":"k2","access":{"replication":[{"names":["r"]}]}}`) // coalesced
	select {
	case <-ch:
	default:
		t.Fatal("no notification")
	}
	select {
	case <-ch:
		t.Error("notifications not coalesced")
	case <-ch2:
		t.Error("cancelled subscription notified")
	default:
	}
	info, ok := e.n.APIKey(id)
	if !ok || info.Type != "cross_cluster" || info.Name != "k" || info.Username != "elastic" || info.Realm != "file1" ||
		info.Access == nil || len(info.Access.Search) != 1 || info.Access.Search[0].FieldSecurityExcept[0] != "secret" ||
		info.Expiration != nil || info.Invalidated {
		t.Errorf("APIKey = %+v", info)
	}
	if m, _ := info.Metadata["a"].(map[string]any); m == nil {
		t.Errorf("metadata = %v", info.Metadata)
	}
	if _, ok := e.n.APIKey("nope"); ok {
		t.Error("unknown key found")
	}
	if len(e.n.APIKeys()) != 2 {
		t.Error("APIKeys")
	}
	e.do("PUT", setPath, `{"persistent":{"cluster.remote.a.seeds":"h:1"}}`)
	select {
	case <-ch:
	default:
		t.Error("no notification for settings")
	}
	cancel()
}

func TestJavaBase64(t *testing.T) {
	cases := map[string]string{
		"YWJj":   "",
		"YWI":    "",
		"YWI=":   "",
		"YQ==":   "",
		"YQ":     "",
		"Y":      "Input byte[] should at least have 2 bytes for base64 bytes",
		"YWJjZ":  "Last unit does not have enough valid bits",
		"YQ=":    "Input byte array has wrong 4-byte ending unit",
		"=abc":   "Input byte array has wrong 4-byte ending unit",
		"YQ==YQ": "Input byte array has incorrect ending byte at 4",
		"YW-j":   "Illegal base64 character 2d",
		"YWé":    "Illegal base64 character -3d",
	}
	for in, want := range cases {
		if _, got := javaBase64Decode(in); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
}
