package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/agent/identity/identitytest"
	"github.com/ecklink/ecklink/internal/backoff"
)

// handshake connects a client with clientConf to a server with serverConf over 127.0.0.1 and
// returns both handshake errors and the leaf the server saw.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (seen *x509.Certificate, clientErr, serverErr error) {
	t.Helper()
	chain, clientErr, serverErr := optionalHandshake(t, serverConf, clientConf)
	if len(chain) > 0 {
		seen = chain[0]
	}
	return seen, clientErr, serverErr
}

// optionalHandshake is handshake for servers where the client certificate is optional: it
// returns the client's chain, empty for an anonymous client.
func optionalHandshake(t *testing.T, serverConf, clientConf *tls.Config) ([]*x509.Certificate, error, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err   error
		chain []*x509.Certificate
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		// TLS 1.3 clients learn about a refused certificate on their first read.
		_, _ = tc.Write([]byte("ok"))
		done <- result{chain: tc.ConnectionState().PeerCertificates}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), clientConf)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 2))
		conn.Close()
	}
	r := <-done
	return r.chain, err, r.err
}

func TestMutualTLS(t *testing.T) {
	clock := backoff.NewFakeClock(time.Now())
	newID := func(env string) *Identity { return newEnvIdentity(t, env, clock) }
	east, west, rogue := newID("east"), newID("west"), newID("rogue")
	// impostor is an environment whose CA is trusted as "west"'s, but whose certificates say "other".
	other := newID("other")

	eastTrust := &identitytest.Trust{}
	eastTrust.Set("west", west.CACertificates())
	eastTrust.Set("rogue-alias", rogue.CACertificates())
	eastTrust.Set("west2", other.CACertificates())
	westTrust := &identitytest.Trust{}
	westTrust.Set("east", east.CACertificates())
	rogueTrust := &identitytest.Trust{}
	rogueTrust.Set("east", east.CACertificates())

	tests := []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		wantError string
	}{
		{name: "paired", server: east.ServerTLSConfig(eastTrust), client: west.ClientTLSConfig(westTrust, "east")},
		{name: "client of an unknown CA", server: east.ServerTLSConfig(eastTrust), client: rogue.ClientTLSConfig(rogueTrust, "east"), wantError: `environment "rogue" is not a paired peer`},
		{name: "client certificate names another environment than its CA is trusted for", server: east.ServerTLSConfig(eastTrust), client: other.ClientTLSConfig(rogueTrust, "east"), wantError: `environment "other" is not a paired peer`},
		{name: "server is not the expected environment", server: rogue.ServerTLSConfig(rogueTrust), client: west.ClientTLSConfig(identitytest.NewTrust(map[string][]*x509.Certificate{"east": rogue.CACertificates()}), "east"), wantError: `peer certificate is for environment "rogue", want "east"`},
		{name: "server signed by a CA the client does not trust for it", server: east.ServerTLSConfig(eastTrust), client: west.ClientTLSConfig(identitytest.NewTrust(map[string][]*x509.Certificate{"east": rogue.CACertificates()}), "east"), wantError: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen, cErr, sErr := handshake(t, tt.server, tt.client)
			if tt.wantError == "" {
				if cErr != nil || sErr != nil {
					t.Fatalf("handshake failed: client %v, server %v", cErr, sErr)
				}
				if env, _ := EnvironmentFromCertificate(seen); env != "west" {
					t.Fatalf("server saw environment %q", env)
				}
				return
			}
			if cErr == nil && sErr == nil {
				t.Fatal("handshake succeeded, want refusal")
			}
			if !strings.Contains(errors.Join(cErr, sErr).Error(), tt.wantError) {
				t.Fatalf("errors = client %v, server %v; want %q", cErr, sErr, tt.wantError)
			}
		})
	}
}

func TestTLSAcrossLeafRenewalAndRotation(t *testing.T) {
	ctx := context.Background()
	clock := backoff.NewFakeClock(time.Now())
	east := newEnvIdentity(t, "east", clock)
	west := newEnvIdentity(t, "west", clock)
	eastTrust, westTrust := &identitytest.Trust{}, &identitytest.Trust{}
	eastTrust.Set("west", west.CACertificates())
	westTrust.Set("east", east.CACertificates())
	server, client := east.ServerTLSConfig(eastTrust), west.ClientTLSConfig(westTrust, "east")

	check := func(name, wantErr string) *x509.Certificate {
		t.Helper()
		seen, cErr, sErr := handshake(t, server, client)
		err := errors.Join(cErr, sErr)
		if wantErr == "" && err != nil {
			t.Fatalf("%s: handshake failed: %v", name, err)
		}
		if wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("%s: error = %v, want %q", name, err, wantErr)
		}
		return seen
	}

	tick := func(ids ...*Identity) {
		t.Helper()
		for _, id := range ids {
			if _, err := id.tick(ctx, clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	first := check("initial", "")
	clock.Advance(2 * time.Minute)
	tick(east, west)
	renewed := check("after renewal", "")
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("new handshake presented the old leaf")
	}

	// Without renewal the client's leaf expires and the server refuses it.
	clock.Advance(2 * time.Minute)
	tick(east)
	clock.Advance(70 * time.Second)
	check("expired client leaf", `failed to verify certificate of environment "west"`)
	tick(east, west)
	check("renewed again", "")

	// Rotation: stage, let the peer trust the new bundle, promote; then drop the old CA.
	old := west.CACertificates()
	if err := west.StageNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	eastTrust.Set("west", west.CACertificates())
	if err := west.PromoteNextCA(ctx); err != nil {
		t.Fatal(err)
	}
	check("after promotion with updated trust", "")
	if err := west.RetirePrevious(ctx); err != nil {
		t.Fatal(err)
	}
	eastTrust.Set("west", west.CACertificates())
	check("after retiring the previous CA", "")

	// A peer that never learned the new CA refuses the promoted leaf.
	stale := &identitytest.Trust{}
	stale.Set("west", old)
	server = east.ServerTLSConfig(stale)
	check("peer with stale trust", "unknown authority")
}

func TestServerTLSConfigWithPairing(t *testing.T) {
	clock := backoff.NewFakeClock(time.Now())
	newID := func(env string) *Identity { return newEnvIdentity(t, env, clock) }
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
