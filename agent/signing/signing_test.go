package signing

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ecklink/ecklink/internal/pemutil"
	"github.com/ecklink/ecklink/test/esim"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustNew(t *testing.T, env string) *Authority {
	t.Helper()
	a, err := New(Config{Environment: env}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// remote is a 9.3 esim node that trusts bundle for signatures.
type remote struct {
	t     *testing.T
	n     *esim.Node
	trust esim.SigningTrust
	now   time.Time
}

func newRemote(t *testing.T, bundle []byte, now time.Time) *remote {
	t.Helper()
	n, err := esim.NewNode(esim.Config{Version: "9.3.0", ClusterName: "logs", NodeName: "logs-0", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	n.SetUser("elastic", "pw")
	cas, err := pemutil.ParseCertificates(bundle, pemutil.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &remote{t: t, n: n, trust: esim.SigningTrust{Configured: true, CAs: cas}, now: now}
}

// key creates a cross-cluster key with identity and returns its encoded value.
func (r *remote) key(identity string) string {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": "k", "access": map[string]any{"search": []any{map[string]any{"names": []string{"*"}}}},
		"certificate_identity": identity})
	req := httptest.NewRequest("POST", "/_security/cross_cluster/api_key", strings.NewReader(string(body)))
	req.SetBasicAuth("elastic", "pw")
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	r.n.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		r.t.Fatalf("create key: %d %s", w.Code, w.Body)
	}
	var out struct{ Encoded string }
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return out.Encoded
}

// connect signs the headers of a request with the certificate and key and has the remote
// authenticate it.
func (r *remote) connect(encoded string, certPEM, keyPEM []byte) error {
	r.t.Helper()
	s, err := esim.NewSigner(certPEM, keyPEM)
	if err != nil {
		r.t.Fatal(err)
	}
	h := esim.CrossClusterHeaders{Credentials: "ApiKey " + encoded, SubjectInfo: "c3ViamVjdA=="}
	if h.Signature, err = s.Sign(h, "9.3.0", rand.Reader); err != nil {
		r.t.Fatal(err)
	}
	_, err = r.n.AuthenticateCrossClusterRequest(h, r.trust)
	return err
}

// TestIssuedCertificatesPassTheRemoteChecks: a certificate for one Elasticsearch passes the
// checks of a remote that trusts the bundle and has the key's identity set to its subject; the
// same subject from another environment's CA, or another Elasticsearch's certificate from the
// same CA, does not.
func TestIssuedCertificatesPassTheRemoteChecks(t *testing.T) {
	east, other := mustNew(t, "east"), mustNew(t, "west")
	subject := east.Subject("apps", "ccs")
	if got := subject.String(); got != "CN=ccs.apps.east,OU=ecklink-signing" {
		t.Fatalf("subject = %q", got)
	}
	now := t0.Add(time.Hour)
	r := newRemote(t, east.TrustBundle(now), now)
	enc := r.key(IdentityPattern(subject.String()))
	for _, tc := range []struct {
		name string
		a    *Authority
		es   string
		want string
	}{
		{"the certificate of the key's subject", east, "ccs", ""},
		{"another environment's CA, same subject", other, "ccs", "Failed to verify cross cluster api key signature certificate"},
		{"another Elasticsearch of the same CA", east, "ccs2", "does not match API key certificate identity pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.a.Subject("apps", tc.es)
			if tc.a == other {
				s = subject
			}
			cert, key, err := tc.a.Issue(s, now)
			if err != nil {
				t.Fatal(err)
			}
			err = r.connect(enc, cert, key)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIdentityPattern(t *testing.T) {
	p := IdentityPattern("CN=ccs.apps.east,OU=ecklink-signing")
	if p != `^CN=ccs\.apps\.east,OU=ecklink-signing$` {
		t.Fatalf("pattern = %q", p)
	}
	re := regexp.MustCompile(p)
	for dn, want := range map[string]bool{
		"CN=ccs.apps.east,OU=ecklink-signing":        true,
		"CN=ccsXapps.east,OU=ecklink-signing":        false, // dots are literal
		"CN=ccs.apps.east,OU=ecklink-signing,O=evil": false, // anchored at the end
		"CN=x,CN=ccs.apps.east,OU=ecklink-signing":   false, // anchored at the start
	} {
		if got := re.MatchString(dn); got != want {
			t.Errorf("%q matched=%v, want %v", dn, got, want)
		}
	}
}

// TestRotation walks the signing CA through a year: staged at two thirds, promoted only once
// remotes trust it, certificates of both CAs accepted during the overlap, previous CA dropped
// when it expires.
func TestRotation(t *testing.T) {
	a := mustNew(t, "east")
	subject := a.Subject("apps", "ccs")
	day := 24 * time.Hour
	oldCert, oldKey, err := a.Issue(subject, t0.Add(240*day))
	if err != nil {
		t.Fatal(err)
	}
	trusted := false
	bundleLen := func(now time.Time) int {
		certs, _ := pemutil.ParseCertificates(a.TrustBundle(now), pemutil.Limits{})
		return len(certs)
	}
	steps := []struct {
		name        string
		at          time.Duration
		trusted     bool
		wantChanged bool
		wantBundle  int
	}{
		{"early in the CA's life", 100 * day, false, false, 1},
		{"two thirds: next staged", 244 * day, false, true, 2},
		{"not promoted before remotes trust it", 245 * day, false, false, 2},
		{"promoted once trusted", 246 * day, true, true, 2},
		{"previous kept while valid", 300 * day, true, false, 2},
		{"previous dropped at its expiry", 366 * day, true, true, 1},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		trusted = s.trusted
		changed, err := a.Tick(now, func() bool { return trusted })
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.wantChanged || bundleLen(now) != s.wantBundle {
			t.Fatalf("%s: changed=%v bundle=%d, want %v %d", s.name, changed, bundleLen(now), s.wantChanged, s.wantBundle)
		}
		if s.name == "promoted once trusted" {
			// The overlap: the remote trusts both CAs; the old certificate must be reissued.
			r := newRemote(t, a.TrustBundle(now), now)
			enc := r.key(IdentityPattern(subject.String()))
			if err := r.connect(enc, oldCert, oldKey); err != nil {
				t.Fatalf("old certificate refused during the overlap: %v", err)
			}
			if !a.NeedsRenewal(oldCert, subject, now) {
				t.Fatal("certificate of the previous CA not due for renewal")
			}
			newCert, newKey, err := a.Issue(subject, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.connect(enc, newCert, newKey); err != nil {
				t.Fatalf("new certificate refused: %v", err)
			}
		}
	}
}

func TestNeedsRenewal(t *testing.T) {
	a := mustNew(t, "east")
	subject := a.Subject("apps", "ccs")
	cert, _, err := a.Issue(subject, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cert    []byte
		subject string
		at      time.Duration
		want    bool
	}{
		{"fresh", cert, "ccs", time.Hour, false},
		{"just before two thirds", cert, "ccs", 19 * 24 * time.Hour, false},
		{"at two thirds", cert, "ccs", 20 * 24 * time.Hour, true},
		{"another subject", cert, "other", time.Hour, true},
		{"garbage", []byte("not pem"), "ccs", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.NeedsRenewal(tc.cert, a.Subject("apps", tc.subject), t0.Add(tc.at)); got != tc.want {
				t.Fatalf("NeedsRenewal = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDataRoundTrip(t *testing.T) {
	a := mustNew(t, "east")
	day := 24 * time.Hour
	if _, err := a.Tick(t0.Add(250*day), nil); err != nil { // stages next
		t.Fatal(err)
	}
	if _, err := a.Tick(t0.Add(251*day), func() bool { return true }); err != nil { // promotes
		t.Fatal(err)
	}
	if _, err := a.Tick(t0.Add(252*day), nil); err != nil {
		t.Fatal(err)
	}
	data, err := a.Data()
	if err != nil {
		t.Fatal(err)
	}
	if len(data[KeyPreviousCert]) == 0 || len(data[KeyNextCert]) != 0 {
		t.Fatalf("want an active and a previous CA, got keys %v", keys(data))
	}
	b, err := Load(Config{Environment: "east"}, data)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(252 * day)
	if string(b.TrustBundle(now)) != string(a.TrustBundle(now)) || !b.ActiveCA().Equal(a.ActiveCA()) {
		t.Fatal("loaded state differs")
	}

	other := mustNew(t, "west")
	otherData, _ := other.Data()
	for _, tc := range []struct {
		name string
		edit func(map[string][]byte)
		want string
	}{
		{"key of another CA", func(d map[string][]byte) { d[KeyCAKey] = otherData[KeyCAKey] }, "the key does not match the certificate"},
		{"no active CA", func(d map[string][]byte) { delete(d, KeyCACert) }, "failed to load the active signing CA"},
		{"next without its key", func(d map[string][]byte) { d[KeyNextCert] = otherData[KeyCACert] }, "failed to load the next signing CA: key:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := map[string][]byte{}
			for k, v := range data {
				d[k] = v
			}
			tc.edit(d)
			_, err := Load(Config{Environment: "east"}, d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatal("error carries key material")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{Environment: "east"}, ""},
		{"no environment", Config{}, "Environment is required"},
		{"leaf too long for the CA", Config{Environment: "east", CAValidity: 90 * 24 * time.Hour, LeafValidity: 31 * 24 * time.Hour}, "at most a third"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, t0)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
