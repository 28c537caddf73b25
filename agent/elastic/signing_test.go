package elastic

import (
	"context"
	"slices"
	"testing"
)

func TestSigningSettings(t *testing.T) {
	ctx := context.Background()
	files := map[string]bool{"/usr/share/elasticsearch/config/s/tls.crt": true, "/usr/share/elasticsearch/config/s/tls.key": true,
		"/usr/share/elasticsearch/config/ca/ca.crt": true}
	e := newEnv(t, "9.3.2")
	e.node.SetFileFunc(func(p string) (string, bool) { return p, files[p] })
	if _, err := e.c.PutRemote(ctx, "logs", RemoteSettings{ProxyAddress: "lb:9443"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		want      Signing
		changed   bool
		badRequst bool
	}{
		{name: "sign", want: Signing{Certificate: "/usr/share/elasticsearch/config/s/tls.crt", Key: "/usr/share/elasticsearch/config/s/tls.key"}, changed: true},
		{name: "again: no write", want: Signing{Certificate: "/usr/share/elasticsearch/config/s/tls.crt", Key: "/usr/share/elasticsearch/config/s/tls.key"}},
		{name: "missing file: bad request, as ES", want: Signing{Certificate: "/usr/share/elasticsearch/config/x/tls.crt", Key: "/usr/share/elasticsearch/config/s/tls.key"}, badRequst: true},
		{name: "stop signing", want: Signing{}, changed: true},
		{name: "stopped: no write", want: Signing{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed, err := e.c.PutSigning(ctx, "logs", tc.want)
			if tc.badRequst {
				if !IsBadRequest(err) {
					t.Fatalf("PutSigning = %v, want a bad request", err)
				}
				return
			}
			if err != nil || changed != tc.changed {
				t.Fatalf("PutSigning = %v, %v; want changed %v", changed, err, tc.changed)
			}
			all, err := e.c.GetRemoteSettings(ctx)
			if err != nil || SigningOf(all["logs"]) != tc.want || all["logs"].ProxyAddress != "lb:9443" {
				t.Fatalf("settings after PutSigning: %+v, %v", all["logs"], err)
			}
		})
	}
	if _, err := e.c.PutSigning(ctx, "logs", Signing{Certificate: "a"}); err == nil {
		t.Fatal("PutSigning with a certificate and no key succeeded")
	}

	// The remote side's trusted CAs.
	cas := []string{"/usr/share/elasticsearch/config/ca/ca.crt"}
	if changed, err := e.c.PutSigningCAs(ctx, cas); err != nil || !changed {
		t.Fatalf("PutSigningCAs = %v, %v", changed, err)
	}
	if got, err := e.c.GetSigningCAs(ctx); err != nil || !slices.Equal(got, cas) {
		t.Fatalf("GetSigningCAs = %v, %v", got, err)
	}
	if changed, err := e.c.PutSigningCAs(ctx, cas); err != nil || changed {
		t.Fatalf("second PutSigningCAs = %v, %v; want no write", changed, err)
	}
	if _, err := e.c.PutSigningCAs(ctx, []string{"/nope/ca.crt"}); !IsBadRequest(err) {
		t.Fatalf("PutSigningCAs of a missing file = %v, want a bad request", err)
	}
	if changed, err := e.c.PutSigningCAs(ctx, nil); err != nil || !changed {
		t.Fatalf("PutSigningCAs(nil) = %v, %v", changed, err)
	}
	if got, err := e.c.GetSigningCAs(ctx); err != nil || len(got) != 0 {
		t.Fatalf("GetSigningCAs after removal = %v, %v", got, err)
	}
	// Removing the alias takes its signing settings too.
	if _, err := e.c.PutSigning(ctx, "logs", Signing{Certificate: "/usr/share/elasticsearch/config/s/tls.crt", Key: "/usr/share/elasticsearch/config/s/tls.key"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.DeleteRemote(ctx, "logs"); err != nil {
		t.Fatal(err)
	}
	if keys := remoteKeys(t, e); len(keys) != 0 {
		t.Fatalf("keys left after DeleteRemote: %v", keys)
	}
}

func TestCertificateIdentitySetAndClear(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "9.3.2")
	created, err := e.c.CreateCrossClusterKey(ctx, CreateKeyRequest{Name: "k", Access: Access{Search: []SearchAccess{{Names: []string{"logs-*"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	pattern := `^CN=ccs\.apps\.east,OU=ecklink-signing$`
	for _, tc := range []struct {
		name string
		set  *string
	}{
		{name: "set", set: &pattern},
		{name: "clear (null)", set: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.c.UpdateCrossClusterKey(ctx, created.ID, UpdateKeyRequest{CertificateIdentity: &tc.set}); err != nil {
				t.Fatal(err)
			}
			k, err := e.c.GetKey(ctx, created.ID)
			if err != nil {
				t.Fatal(err)
			}
			if (k.CertificateIdentity == nil) != (tc.set == nil) || (tc.set != nil && *k.CertificateIdentity != *tc.set) {
				t.Fatalf("certificate_identity = %v, want %v", k.CertificateIdentity, tc.set)
			}
		})
	}
}
