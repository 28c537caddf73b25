package pemutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// fixedNow is the time every test (and the fuzz target) validates at, so that committed seeds
// stay valid.
var fixedNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

type certOpts struct {
	cn        string
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
	noBasic   bool
	keyUsage  x509.KeyUsage
}

func mustCert(t testing.TB, o certOpts) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: o.cn},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		BasicConstraintsValid: !o.noBasic,
		IsCA:                  o.isCA,
		KeyUsage:              o.keyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemOf(certs ...*x509.Certificate) []byte { return EncodeBundle(certs) }

func TestValidateCABundle(t *testing.T) {
	ca, caKey := mustCert(t, certOpts{cn: "root", isCA: true, keyUsage: x509.KeyUsageCertSign})
	ca2, _ := mustCert(t, certOpts{cn: "second", isCA: true})
	leaf, _ := mustCert(t, certOpts{cn: "x"})
	noBasic, _ := mustCert(t, certOpts{cn: "nobasic", noBasic: true})
	noSign, _ := mustCert(t, certOpts{cn: "nosign", isCA: true, keyUsage: x509.KeyUsageDigitalSignature})
	expired, _ := mustCert(t, certOpts{cn: "y", isCA: true, notBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), notAfter: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	future, _ := mustCert(t, certOpts{cn: "z", isCA: true, notBefore: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
	keyPEM, err := EncodePrivateKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	many := bytes.Repeat(pemOf(ca), 33)

	tests := []struct {
		name    string
		bundle  []byte
		limits  Limits
		wantN   int
		wantErr string
	}{
		{name: "one CA", bundle: pemOf(ca), wantN: 1},
		{name: "two CAs with comments", bundle: append([]byte("# ECK transport CA\n"), pemOf(ca, ca2)...), wantN: 2},
		{name: "leaf is not a CA", bundle: pemOf(ca, leaf), wantErr: "certificate 2 (CN=x): not a CA (basicConstraints CA=false)"},
		{name: "no basic constraints", bundle: pemOf(noBasic), wantErr: "certificate 1 (CN=nobasic): not a CA (basicConstraints missing)"},
		{name: "no certSign", bundle: pemOf(noSign), wantErr: "certificate 1 (CN=nosign): not a CA (keyUsage lacks certSign)"},
		{name: "expired", bundle: pemOf(expired), wantErr: "certificate 1 (CN=y): expired at 2026-01-02T03:04:05Z"},
		{name: "not yet valid", bundle: pemOf(ca, future), wantErr: "certificate 2 (CN=z): not valid before 2027-01-01T00:00:00Z"},
		{name: "too big", bundle: make([]byte, 10<<20), wantErr: "bundle is 10485760 bytes, at most 262144 allowed"},
		{name: "too many", bundle: many, wantErr: "bundle has more than 32 certificates"},
		{name: "custom limit", bundle: pemOf(ca, ca2), limits: Limits{MaxCertificates: 1}, wantErr: "bundle has more than 1 certificates"},
		{name: "empty", bundle: nil, wantErr: "no PEM certificate found"},
		{name: "garbage", bundle: []byte("hello world"), wantErr: "no PEM certificate found"},
		{name: "private key", bundle: append(pemOf(ca, ca2), keyPEM...), wantErr: `PEM block 3 has type "PRIVATE KEY", want CERTIFICATE`},
		{name: "malformed block", bundle: append(pemOf(ca), []byte("-----BEGIN CERTIFICATE-----\n%%%\n")...), wantErr: "PEM block 2 is malformed"},
		{name: "bad DER", bundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), wantErr: "certificate 1: not a valid X.509 certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := ValidateCABundle(tt.bundle, fixedNow, tt.limits)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("ValidateCABundle() error = %v, want prefix %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), strings.Split(string(keyPEM), "\n")[1][:20]) {
					t.Fatalf("error leaks key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateCABundle() error = %v", err)
			}
			if len(certs) != tt.wantN {
				t.Fatalf("got %d certificates, want %d", len(certs), tt.wantN)
			}
		})
	}
}

func TestFingerprintAndPin(t *testing.T) {
	ca, _ := mustCert(t, certOpts{cn: "root", isCA: true})
	fp := Fingerprint(ca)
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Fatalf("Fingerprint() = %q, want 64 lower-case hex digits", fp)
	}
	pin := SPKIPin(ca)
	if !strings.HasPrefix(pin, "sha256:") || len(pin) != len("sha256:")+64 {
		t.Fatalf("SPKIPin() = %q", pin)
	}
	if pin[7:] == fp {
		t.Fatal("pin must hash the public key info, not the certificate")
	}
	certs, err := ParseCertificates(EncodeBundle([]*x509.Certificate{ca, ca}), Limits{})
	if err != nil || len(certs) != 2 || Fingerprint(certs[1]) != fp {
		t.Fatalf("EncodeBundle/ParseCertificates round trip failed: %v", err)
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	_, key := mustCert(t, certOpts{cn: "k"})
	data, err := EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(got) {
		t.Fatal("parsed key differs")
	}
	for _, bad := range [][]byte{nil, []byte("x"), pemOf(mustCertOnly(t))} {
		if _, err := ParsePrivateKey(bad); err == nil {
			t.Fatalf("ParsePrivateKey(%q) succeeded", bad)
		}
	}
}

// TestParseKeyPair: one certificate and its own key load; anything else is refused naming the
// part that failed, without key bytes.
func TestParseKeyPair(t *testing.T) {
	cert, key := mustCert(t, certOpts{cn: "ca", isCA: true})
	other, otherKey := mustCert(t, certOpts{cn: "other", isCA: true})
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		b, err := EncodePrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name          string
		cert, key     []byte
		want, wantErr string
	}{
		{name: "a pair", cert: pemOf(cert), key: keyPEM(key), want: "ca"},
		{name: "key of another certificate", cert: pemOf(cert), key: keyPEM(otherKey), wantErr: ErrKeyMismatch.Error()},
		{name: "two certificates", cert: pemOf(cert, other), key: keyPEM(key), wantErr: "certificate: bundle has more than 1 certificates"},
		{name: "no certificate", key: keyPEM(key), wantErr: "certificate: no PEM certificate found"},
		{name: "no key", cert: pemOf(cert), wantErr: "key: no PEM private key found"},
		{name: "a certificate for a key", cert: pemOf(cert), key: pemOf(cert), wantErr: "key: PEM block 1 has type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, k, err := ParseKeyPair(tc.cert, tc.key)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY-----") {
					t.Fatalf("error carries key material: %v", err)
				}
				return
			}
			if err != nil || c.Subject.CommonName != tc.want || !key.Equal(k) {
				t.Fatalf("got %v, %v; want %s and its key", c, err, tc.want)
			}
		})
	}
}

func mustCertOnly(t *testing.T) *x509.Certificate {
	c, _ := mustCert(t, certOpts{cn: "c"})
	return c
}

func TestDescribe(t *testing.T) {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: "a\x00b" + strings.Repeat("c", 100)}}
	got := Describe(c)
	if strings.ContainsRune(got, 0) || len(got) > 3+64+3 {
		t.Fatalf("Describe() = %q", got)
	}
	if got := Describe(&x509.Certificate{Subject: pkix.Name{Organization: []string{"org"}}}); got != "O=org" {
		t.Fatalf("Describe() = %q, want O=org", got)
	}
	if got := Describe(&x509.Certificate{}); got != "empty subject" {
		t.Fatalf("Describe() = %q", got)
	}
}
