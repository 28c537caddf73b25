package esim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway CA that issues signing certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB, cn string, notBefore time.Time) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore.Add(-time.Hour), NotAfter: notBefore.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issue returns the PEM chain (leaf, CA) and PEM key of a leaf with the given subject.
func (ca *testCA) issue(t testing.TB, subject pkix.Name, notBefore, notAfter time.Time, key crypto.Signer, eku ...x509.ExtKeyUsage) ([]byte, []byte) {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func mustSigner(t testing.TB, certPEM, keyPEM []byte) *Signer {
	t.Helper()
	s, err := NewSigner(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func sign(t *testing.T, s *Signer, h CrossClusterHeaders) string {
	t.Helper()
	v, err := s.Sign(h, "9.3.0", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuthenticateCrossClusterRequestSigning(t *testing.T) {
	e := newEnv(t, "9.3.0")
	now := e.clock.Now()
	ca := newTestCA(t, "signing-ca", now)
	otherCA := newTestCA(t, "other-ca", now)
	subject := pkix.Name{CommonName: "signer.cluster-a.example", Organization: []string{"Acme"}}
	const identity = `^CN=signer\\.cluster-a\\.example,O=Acme$`
	good := issueSigner(t, ca, subject, now.Add(-time.Hour), now.Add(time.Hour), nil)
	untrusted := issueSigner(t, otherCA, subject, now.Add(-time.Hour), now.Add(time.Hour), nil)
	expired := issueSigner(t, ca, subject, now.Add(-2*time.Hour), now.Add(-time.Hour), nil)
	serverOnly := issueSigner(t, ca, subject, now.Add(-time.Hour), now.Add(time.Hour), nil, x509.ExtKeyUsageServerAuth)
	otherSubject := issueSigner(t, ca, pkix.Name{CommonName: "signer.cluster-c.example", Organization: []string{"Acme"}},
		now.Add(-time.Hour), now.Add(time.Hour), nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner := issueSigner(t, ca, subject, now.Add(-time.Hour), now.Add(time.Hour), rsaKey)

	plainID, plainEnc := e.createCCKey(`{"name":"plain","access":{"search":[{"names":["a"]}]}}`)
	idID, idEnc := e.createCCKey(`{"name":"id","access":{"search":[{"names":["a"]}]},"certificate_identity":"` + identity + `"}`)
	// A pattern that matches only a prefix of the DN: the match is over the whole DN.
	_, prefixEnc := e.createCCKey(`{"name":"prefix","access":{"search":[{"names":["a"]}]},"certificate_identity":"CN=signer\\.cluster-a\\.example"}`)
	trusted := SigningTrust{Configured: true, CAs: []*x509.Certificate{ca.cert}}
	hdr := func(enc string) CrossClusterHeaders {
		return CrossClusterHeaders{Credentials: "ApiKey " + enc, SubjectInfo: "c3ViamVjdA=="}
	}
	signed := func(s *Signer, enc string) CrossClusterHeaders {
		h := hdr(enc)
		h.Signature = sign(t, s, h)
		return h
	}
	tampered := signed(good, idEnc)
	tampered.SubjectInfo = "b3RoZXI=" // the signature covers the subject info too
	emptyChain := hdr(idEnc)
	emptyChain.Signature = encodeWire(t, signatureWire{TransportVersion: "9.3.0", Algorithm: algECDSA, Signature: "AAAA"})
	wrongSecret := signed(good, base64.StdEncoding.EncodeToString([]byte(idID+":nope")))
	badSigWrongSecret := hdr(base64.StdEncoding.EncodeToString([]byte(idID + ":nope")))
	badSigWrongSecret.Signature = tampered.Signature
	malformed := hdr(idEnc)
	malformed.Signature = "not base64"

	fromGood := describeChain(good.chain)
	cases := []struct {
		name   string
		h      CrossClusterHeaders
		trust  SigningTrust
		wantID string
		status int
		reason string // exact, or a prefix when it ends in "..."
		cause  string
	}{
		{name: "no identity, no signature", h: hdr(plainEnc), trust: trusted, wantID: plainID},
		{name: "no identity, trusted signature", h: signed(good, plainEnc), trust: trusted, wantID: plainID},
		{name: "identity, matching signature", h: signed(good, idEnc), trust: trusted, wantID: idID},
		{name: "identity, RSA signer", h: signed(rsaSigner, idEnc), trust: trusted, wantID: idID},
		{name: "identity required, no signature", h: hdr(idEnc), trust: trusted, status: 401,
			reason: "Expected signature for cross cluster API key, but no signature was provided"},
		{name: "malformed signature", h: malformed, trust: trusted, status: 400,
			reason: "failed to extract credentials from headers", cause: "Illegal base64 character 20"},
		{name: "no certificates", h: emptyChain, trust: trusted, status: 401, reason: "Provided signature does not contain any certificates"},
		{name: "untrusted signer", h: signed(untrusted, idEnc), trust: trusted, status: 401,
			reason: "Failed to verify cross cluster api key signature certificate from " + describeChain(untrusted.chain)},
		{name: "untrusted signer breaks a key without identity", h: signed(untrusted, plainEnc), trust: trusted, status: 401,
			reason: "Failed to verify cross cluster api key signature certificate from " + describeChain(untrusted.chain)},
		{name: "expired signer", h: signed(expired, idEnc), trust: trusted, status: 401,
			reason: "Failed to verify cross cluster api key signature certificate from " + describeChain(expired.chain)},
		{name: "signer without clientAuth usage", h: signed(serverOnly, idEnc), trust: trusted, status: 401,
			reason: "Failed to verify cross cluster api key signature certificate from " + describeChain(serverOnly.chain)},
		{name: "no trust configured uses the default store", h: signed(good, idEnc), trust: SigningTrust{}, status: 401,
			reason: "Failed to verify cross cluster api key signature certificate from " + fromGood},
		{name: "trust configured without issuers", h: signed(good, idEnc), trust: SigningTrust{Configured: true}, status: 401,
			reason: "Cannot verify signed cross-cluster headers because [cluster.remote.signing] has not trust configuration"},
		{name: "bad signature", h: tampered, trust: trusted, status: 401, reason: "Invalid cross cluster api key signature from " + fromGood},
		{name: "signature checked before the key", h: badSigWrongSecret, trust: trusted, status: 401,
			reason: "Invalid cross cluster api key signature from " + fromGood},
		{name: "valid signature, wrong secret", h: wrongSecret, trust: trusted, status: 401,
			reason: "invalid credentials for API key [" + idID + "]"},
		{name: "subject mismatch", h: signed(otherSubject, idEnc), trust: trusted, status: 401,
			reason: "DN from provided signature [CN=signer.cluster-c.example,O=Acme] does not match API key certificate identity pattern [" +
				strings.ReplaceAll(identity, `\\`, `\`) + "]"},
		{name: "pattern must match the whole DN", h: signed(good, prefixEnc), trust: trusted, status: 401,
			reason: "DN from provided signature [CN=signer.cluster-a.example,O=Acme] does not match..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.n.AuthenticateCrossClusterRequest(tc.h, tc.trust)
			if tc.status == 0 {
				if err != nil || id != tc.wantID {
					t.Fatalf("got %q, %v; want %q", id, err, tc.wantID)
				}
				return
			}
			var ee *Error
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if id != "" || ee.Status != tc.status || !reasonMatches(ee.Reason, tc.reason) {
				t.Errorf("got %q %d %q; want %d %q", id, ee.Status, ee.Reason, tc.status, tc.reason)
			}
			if tc.cause != "" && (ee.CausedBy == nil || ee.CausedBy.Reason != tc.cause) {
				t.Errorf("caused_by = %+v, want %q", ee.CausedBy, tc.cause)
			}
		})
	}

	t.Run("clearing the identity lifts the requirement", func(t *testing.T) {
		if r := e.do("PUT", "/_security/cross_cluster/api_key/"+idID, `{"certificate_identity":null}`); r.status != 200 {
			t.Fatalf("update: %d %s", r.status, r.raw)
		}
		if id, err := e.n.AuthenticateCrossClusterRequest(hdr(idEnc), trusted); err != nil || id != idID {
			t.Errorf("got %q, %v", id, err)
		}
	})
	t.Run("signer expires as the clock moves", func(t *testing.T) {
		h := signed(good, plainEnc)
		e.clock.Advance(2 * time.Hour)
		if _, err := e.n.AuthenticateCrossClusterRequest(h, trusted); err == nil || !strings.Contains(err.Error(), "Failed to verify") {
			t.Errorf("err = %v, want an expired signer", err)
		}
	})
}

func TestSigningBefore93(t *testing.T) {
	// Below 9.3 the signature header is unknown: even an untrusted signature is ignored.
	e := newEnv(t, "9.2.4")
	now := e.clock.Now()
	other := issueSigner(t, newTestCA(t, "other", now), pkix.Name{CommonName: "x"}, now.Add(-time.Hour), now.Add(time.Hour), nil)
	id, enc := e.createCCKey(`{"name":"k","access":{"search":[{"names":["a"]}]}}`)
	h := CrossClusterHeaders{Credentials: "ApiKey " + enc, SubjectInfo: "s"}
	h.Signature = sign(t, other, h)
	if got, err := e.n.AuthenticateCrossClusterRequest(h, SigningTrust{Configured: true}); err != nil || got != id {
		t.Errorf("got %q, %v", got, err)
	}
	if e.n.SupportsSigning() {
		t.Error("9.2 supports signing")
	}
}

func TestNewSigner(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "ca", now)
	subject := pkix.Name{CommonName: "s", OrganizationalUnit: []string{"u"}}
	cert, key := ca.issue(t, subject, now.Add(-time.Hour), now.Add(time.Hour), nil)
	_, otherKey := ca.issue(t, subject, now.Add(-time.Hour), now.Add(time.Hour), nil)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	edKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	sec1Cert, _ := ca.issue(t, subject, now.Add(-time.Hour), now.Add(time.Hour), ecKey)
	cases := []struct {
		name      string
		cert, key []byte
		err       string
	}{
		{"pkcs8 ec", cert, key, ""},
		{"sec1 ec", sec1Cert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ""},
		{"no certificate", nil, key, "no PEM certificate found"},
		{"no key", cert, nil, "no PEM block found"},
		{"ed25519 key", cert, edKey, "Unsupported Key Type [EdDSA]"},
		{"key of another certificate", cert, otherKey, "the key does not match the certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSigner(tc.cert, tc.key)
			if tc.err == "" {
				if err != nil || s.Subject() != "CN=s,OU=u" {
					t.Fatalf("got %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func issueSigner(t testing.TB, ca *testCA, subject pkix.Name, notBefore, notAfter time.Time, key crypto.Signer, eku ...x509.ExtKeyUsage) *Signer {
	t.Helper()
	cert, k := ca.issue(t, subject, notBefore, notAfter, key, eku...)
	return mustSigner(t, cert, k)
}

func encodeWire(t *testing.T, w signatureWire) string {
	t.Helper()
	data, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(data)
}

// FuzzSignatureHeader: whatever a caller puts in the signature header, the remote answers with an
// ES error (400 malformed, 401 refused) and never lets a key that requires an identity through.
func FuzzSignatureHeader(f *testing.F) {
	clock := &fakeClock{t: time.UnixMilli(1719990000000)}
	n, err := NewNode(Config{Version: "9.3.0", ClusterName: "c1", NodeName: "node-0", Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	n.SetUser("elastic", testPassword)
	req := httptest.NewRequest("POST", "/_security/cross_cluster/api_key",
		strings.NewReader(`{"name":"id","access":{"search":[{"names":["a"]}]},"certificate_identity":"^CN=signer$"}`))
	req.Header.Set("Authorization", basic("elastic", testPassword))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	n.Handler().ServeHTTP(w, req)
	var key struct{ Encoded string }
	if err := json.Unmarshal(w.Body.Bytes(), &key); err != nil || key.Encoded == "" {
		f.Fatalf("create key: %d %s", w.Code, w.Body)
	}
	now := clock.Now()
	ca := newTestCA(f, "ca", now)
	s := issueSigner(f, ca, pkix.Name{CommonName: "other"}, now.Add(-time.Hour), now.Add(time.Hour), nil)
	h := CrossClusterHeaders{Credentials: "ApiKey " + key.Encoded, SubjectInfo: "s"}
	valid, err := s.Sign(h, "9.3.0", rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(valid)
	for _, seed := range []string{valid, string(raw), "", "not base64", "e30=", `{"certificates":["AAAA"]}`} {
		f.Add(seed)
	}
	trust := SigningTrust{Configured: true, CAs: []*x509.Certificate{ca.cert}}
	f.Fuzz(func(t *testing.T, sig string) {
		if sig == "" {
			return
		}
		for _, v := range []string{sig, base64.StdEncoding.EncodeToString([]byte(sig))} {
			hh := h
			hh.Signature = v
			id, err := n.AuthenticateCrossClusterRequest(hh, trust)
			var ee *Error
			if id != "" || !errors.As(err, &ee) || (ee.Status != 400 && ee.Status != 401) {
				t.Fatalf("signature %q: got %q, %v", v, id, err)
			}
		}
	})
}
