package identity

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/internal/backoff"
)

func TestServerTLSConfigWithPairing(t *testing.T) {
	clock := backoff.NewFakeClock(time.Now())
	newID := func(env string) *Identity { return newTestIdentity(t, testConfig(env, fake.NewClientset(), clock)) }
	east, west, rogue := newID("east"), newID("west"), newID("rogue")
	eastTrust, westTrust := &identitytest.Trust{}, &identitytest.Trust{}
	eastTrust.Set("west", west.CACertificates())
	westTrust.Set("east", east.CACertificates())
	anonymous := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // the server is not under test

	tests := []struct {
		name      string
		client    *tls.Config
		wantError string
		wantSeen  bool
	}{
		{name: "paired client", client: west.ClientTLSConfig(westTrust, "east"), wantSeen: true},
		{name: "anonymous client (a joiner)", client: anonymous},
		{name: "client of an unpaired CA", client: rogue.ClientTLSConfig(westTrust, "east"), wantError: `environment "rogue" is not a paired peer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen, cErr, sErr := optionalHandshake(t, east.ServerTLSConfigWithPairing(eastTrust), tt.client)
			if tt.wantError != "" {
				if sErr == nil || !strings.Contains(sErr.Error(), tt.wantError) {
					t.Fatalf("server error = %v (client %v), want %q", sErr, cErr, tt.wantError)
				}
				return
			}
			if cErr != nil || sErr != nil {
				t.Fatalf("handshake failed: client %v, server %v", cErr, sErr)
			}
			if (len(seen) > 0) != tt.wantSeen {
				t.Fatalf("server saw certificate %v, want one: %v", seen, tt.wantSeen)
			}
		})
	}
	t.Run("a peer's leaf carries its CA for pin checks", func(t *testing.T) {
		l, err := east.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Certificate) != 2 || string(l.Certificate[1]) != string(east.CACertificates()[0].Raw) {
			t.Fatalf("chain has %d certificates, want leaf and CA", len(l.Certificate))
		}
	})
}
