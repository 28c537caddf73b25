package importer

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ecklink/ecklink/agent/internal/testenv"
	"github.com/ecklink/ecklink/agent/peering"
	peerv1 "github.com/ecklink/ecklink/proto/ecklink/peer/v1"
)

func testCA(t *testing.T, isCA bool, notAfter time.Time) []byte {
	t.Helper()
	return testenv.New(t, testenv.Spec{CN: "logs-transport", NotAfter: notAfter, IsCA: isCA, KeyUsage: x509.KeyUsageCertSign}).PEM()
}

func TestValidateCertificate(t *testing.T) {
	ca := testCA(t, true, time.Now().Add(time.Hour))
	good := func() *peerv1.Credentials {
		return &peerv1.Credentials{Model: peerv1.SecurityModel_SECURITY_MODEL_CERTIFICATE, CaBundle: ca,
			ProxyAddress: "203.0.113.7:9300", ServerName: "logs-es-transport.data.svc"}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*peerv1.Credentials)
		reason string
	}{
		{name: "valid", mutate: func(*peerv1.Credentials) {}},
		{name: "an API key with the certificate model", mutate: func(c *peerv1.Credentials) { c.ApiKeyId = "abc" }, reason: "InvalidCredentials"},
		{name: "an expiration with the certificate model", mutate: func(c *peerv1.Credentials) { c.ApiKeyExpiration = timestamppb.Now() }, reason: "InvalidCredentials"},
		{name: "not a CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = testCA(t, false, time.Now().Add(time.Hour)) }, reason: "InvalidCA"},
		{name: "expired CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = testCA(t, true, time.Now().Add(-time.Minute)) }, reason: "InvalidCA"},
		{name: "no CA", mutate: func(c *peerv1.Credentials) { c.CaBundle = nil }, reason: "InvalidCA"},
		{name: "no port", mutate: func(c *peerv1.Credentials) { c.ProxyAddress = "logs.example" }, reason: "InvalidAddress"},
		{name: "bad server name", mutate: func(c *peerv1.Credentials) { c.ServerName = "a b" }, reason: "InvalidServerName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mutate(c)
			err := validateCertificate(c, time.Now())
			var ref *peering.RefusalError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && (!errors.As(err, &ref) || ref.Reason != tc.reason):
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
		})
	}
}
