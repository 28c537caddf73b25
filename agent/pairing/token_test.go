package pairing

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/config"
)

var testPin = "sha256:" + strings.Repeat("ab", 32)

func TestTokenRoundTrip(t *testing.T) {
	tok, err := NewToken("east", []string{"agent.east:9400"}, []string{testPin}, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeToken("  " + enc + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Secret != tok.Secret || !got.Expires.Equal(tok.Expires) || got.Environment != "east" {
		t.Fatalf("decoded %+v, want %+v", got, tok)
	}
	if s := fmt.Sprintf("%v %+v %#v", tok, tok, tok); strings.Contains(s, string(tok.Secret)) {
		t.Fatalf("formatting a token shows its secret: %s", s)
	}
	if !secretMatches(tok.Secret, HashSecret(tok.Secret)) || secretMatches(tok.Secret+"x", HashSecret(tok.Secret)) {
		t.Fatal("secretMatches is wrong")
	}
}

func TestDecodeTokenErrors(t *testing.T) {
	valid := `{"v":1,"environment":"east","endpoints":["a:1"],"pins":["` + testPin + `"],"id":"0123456789abcdef","secret":"` + strings.Repeat("s", 43) + `","expires":"2030-01-01T00:00:00Z"}`
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, in, want string
	}{
		{"not base64", "%%%", "not base64url"},
		{"not json", enc("hello"), "not a pairing token"},
		{"unknown field", enc(strings.Replace(valid, `"v":1`, `"v":1,"x":2`, 1)), "not a pairing token"},
		{"future version", enc(strings.Replace(valid, `"v":1`, `"v":2`, 1)), "version 2"},
		{"bad environment", enc(strings.Replace(valid, `"east"`, `"East"`, 1)), "environment: invalid value"},
		{"no endpoints", enc(strings.Replace(valid, `["a:1"]`, `[]`, 1)), "endpoints: want 1 to 16"},
		{"bad endpoint", enc(strings.Replace(valid, `["a:1"]`, `["a"]`, 1)), "endpoints[0]"},
		{"bad pin", enc(strings.Replace(valid, testPin, "md5:00", 1)), "pins[0]"},
		{"bad id", enc(strings.Replace(valid, "0123456789abcdef", "xyz", 1)), "id: want 16 hex digits"},
		{"short secret", enc(strings.Replace(valid, strings.Repeat("s", 43), "s", 1)), "secret: want 32 to 128 characters, got 1"},
		{"too long", strings.Repeat("A", maxEncodedToken+1), "at most 8192 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeToken(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeToken() error = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("s", 43)) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
	if _, err := DecodeToken(enc(valid)); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
}

func FuzzDecodeToken(f *testing.F) {
	tok, _ := NewToken("east", []string{"a:1"}, []string{testPin}, time.Now())
	enc, _ := tok.Encode()
	f.Add(enc)
	f.Add("")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := DecodeToken(s)
		if err != nil {
			if got != nil {
				t.Fatal("token returned with an error")
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded token does not validate: %v", err)
		}
	})
}

// TestMaxTTLMatchesTheAgentSetting: agentctl's --ttl and the agent's pairing.tokenMaxTTL share
// one upper bound, written in two packages.
func TestMaxTTLMatchesTheAgentSetting(t *testing.T) {
	if MaxTTL != config.MaxTokenTTL {
		t.Fatalf("pairing.MaxTTL %s, config.MaxTokenTTL %s", MaxTTL, config.MaxTokenTTL)
	}
}
