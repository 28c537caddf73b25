// Package signing is the certificate side of Elasticsearch 9.3+ strong identity verification:
// the agent's signing CA (ECDSA P-256, persisted as Secret data in the agent's namespace), the
// signing certificate it issues for each local Elasticsearch (one subject per cluster, the same on
// every node), renewal of those certificates before they expire, rotation of the CA with an
// overlap in which the remote clusters trust both CAs, and the anchored certificate_identity
// pattern the remote side puts on the API key.
//
// It holds no Kubernetes or Elasticsearch client: callers persist Data() and distribute
// TrustBundle(). The importer holds one Authority per agent (agent/importer/signing.go); the
// exporter trusts the bundles its peers send (agent/exporter/signing.go).
//
// The order of the steps on a live link matters (test/esim/pod TestStrongIdentityLiveOrder): the
// remote trusts the signing CA, then the local cluster signs, then the key gets its identity; to
// disable, the reverse. A key with an identity refuses unsigned requests, and a remote refuses
// signatures it does not trust even for keys without identity, so any other order disconnects.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ecklink/ecklink/internal/certutil"
	"github.com/ecklink/ecklink/internal/pemutil"
)

// Secret data keys of the signing CA state.
const (
	KeyCACert       = "ca.crt"
	KeyCAKey        = "ca.key"
	KeyNextCert     = "next.crt"
	KeyNextKey      = "next.key"
	KeyPreviousCert = "previous.crt"
	// KeyRotateRequest holds the id of a rotation on request (agentctl rotate signing) whose
	// staged CA is not promoted yet.
	KeyRotateRequest = "rotate-request"
	// KeyRotateDone holds the id of the last rotation on request whose CA was promoted.
	KeyRotateDone = "rotate-done"
)

// organizationalUnit marks the signing certificates' subjects.
const organizationalUnit = "ecklink-signing"

// Config sets the lifetimes. Zero values take the defaults.
type Config struct {
	// Environment names this agent's environment in the CA subject.
	Environment string
	// CAValidity is the signing CA's lifetime. Default one year.
	CAValidity time.Duration
	// LeafValidity is a signing certificate's lifetime. Default 30 days.
	LeafValidity time.Duration
}

func (c *Config) setDefaults() {
	if c.CAValidity == 0 {
		c.CAValidity = 365 * 24 * time.Hour
	}
	if c.LeafValidity == 0 {
		c.LeafValidity = 30 * 24 * time.Hour
	}
}

// Validate checks the configuration, naming the bad field.
func (c Config) Validate() error {
	switch {
	case c.Environment == "":
		return errors.New("invalid signing config: Environment is required")
	case c.LeafValidity <= 0 || c.CAValidity <= 0:
		return errors.New("invalid signing config: CAValidity and LeafValidity must be positive")
	case 3*c.LeafValidity > c.CAValidity:
		// The next CA is staged at two thirds of the active CA's life; a leaf must be renewable
		// (at two thirds of its own life) well within the last third.
		return fmt.Errorf("invalid signing config: LeafValidity %s must be at most a third of CAValidity %s", c.LeafValidity, c.CAValidity)
	}
	return nil
}

// pair is a CA certificate with its key.
type pair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Authority is the signing CA state: the active CA issues certificates; a staged next CA is
// trusted by remotes before it issues anything; the previous CA stays trusted while certificates
// it issued may still be in use. It is not safe for concurrent use.
type Authority struct {
	cfg      Config
	active   *pair
	next     *pair
	previous *x509.Certificate
	// request is the rotation on request the staged CA answers ("" for a scheduled one).
	request string
	// done is the last rotation on request whose CA was promoted.
	done string
}

// New creates an Authority with a fresh active CA.
func New(cfg Config, now time.Time) (*Authority, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ca, err := newCA(cfg.Environment, now, cfg.CAValidity)
	if err != nil {
		return nil, err
	}
	return &Authority{cfg: cfg, active: ca}, nil
}

// Load restores an Authority from Secret data written by Data.
func Load(cfg Config, data map[string][]byte) (*Authority, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authority{cfg: cfg}
	var err error
	if a.active, err = decodePair(data[KeyCACert], data[KeyCAKey], "active"); err != nil {
		return nil, err
	}
	if len(data[KeyNextCert]) > 0 || len(data[KeyNextKey]) > 0 {
		if a.next, err = decodePair(data[KeyNextCert], data[KeyNextKey], "next"); err != nil {
			return nil, err
		}
	}
	if len(data[KeyPreviousCert]) > 0 {
		certs, err := pemutil.ParseCertificates(data[KeyPreviousCert], pemutil.Limits{})
		if err != nil || len(certs) != 1 {
			return nil, fmt.Errorf("failed to load the previous signing CA: want one certificate (%v)", err)
		}
		a.previous = certs[0]
	}
	if a.next != nil {
		a.request = string(data[KeyRotateRequest])
	}
	a.done = string(data[KeyRotateDone])
	return a, nil
}

func decodePair(certPEM, keyPEM []byte, role string) (*pair, error) {
	cert, key, err := pemutil.ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("failed to load the %s signing CA: %w", role, err)
	}
	return &pair{cert: cert, key: key}, nil
}

// Data is the state as Secret data (it holds private keys: store it only in a Secret).
func (a *Authority) Data() (map[string][]byte, error) {
	data := map[string][]byte{}
	put := func(p *pair, certKey, keyKey string) error {
		data[certKey] = pemutil.EncodeBundle([]*x509.Certificate{p.cert})
		k, err := pemutil.EncodePrivateKey(p.key)
		if err != nil {
			return fmt.Errorf("failed to encode the signing CA key: %w", err)
		}
		data[keyKey] = k
		return nil
	}
	if err := put(a.active, KeyCACert, KeyCAKey); err != nil {
		return nil, err
	}
	if a.next != nil {
		if err := put(a.next, KeyNextCert, KeyNextKey); err != nil {
			return nil, err
		}
	}
	if a.previous != nil {
		data[KeyPreviousCert] = pemutil.EncodeBundle([]*x509.Certificate{a.previous})
	}
	if a.request != "" {
		data[KeyRotateRequest] = []byte(a.request)
	}
	if a.done != "" {
		data[KeyRotateDone] = []byte(a.done)
	}
	return data, nil
}

// TrustBundle is what remote clusters must trust (cluster.remote.signing.certificate_authorities):
// the active CA, the staged next CA and the previous CA, each while it is unexpired.
func (a *Authority) TrustBundle(now time.Time) []byte {
	var certs []*x509.Certificate
	for _, c := range []*x509.Certificate{a.active.cert, a.nextCert(), a.previous} {
		if c != nil && now.Before(c.NotAfter) {
			certs = append(certs, c)
		}
	}
	return pemutil.EncodeBundle(certs)
}

func (a *Authority) nextCert() *x509.Certificate {
	if a.next == nil {
		return nil
	}
	return a.next.cert
}

// Subject is the subject of the signing certificate of Elasticsearch es in namespace ns of this
// environment, in RFC 2253 form as Elasticsearch matches it, e.g.
// "CN=ccs.apps.east,OU=ecklink-signing".
func (a *Authority) Subject(ns, es string) pkix.Name { return SubjectFor(a.cfg.Environment, ns, es) }

// SubjectFor is the signing subject of Elasticsearch es in namespace ns of environment env. The
// remote side checks that a peer asks for its own subject only (see the exporter's OnImport).
func SubjectFor(env, ns, es string) pkix.Name {
	return pkix.Name{CommonName: es + "." + ns + "." + env, OrganizationalUnit: []string{organizationalUnit}}
}

// IdentityPattern is the certificate_identity for a key that only the holder of the signing
// certificate with subject may use: that DN exactly, anchored and with every metacharacter
// escaped (the escapes are valid in Java's regex syntax too).
func IdentityPattern(subject string) string {
	return "^" + regexp.QuoteMeta(subject) + "$"
}

// Issue issues a signing certificate (clientAuth, as the remote's trust manager requires) for
// subject from the active CA. It returns the PEM certificate and PEM private key.
func (a *Authority) Issue(subject pkix.Name, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate signing key: %w", err)
	}
	serial, err := certutil.SerialNumber()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(a.cfg.LeafValidity)
	if notAfter.After(a.active.cert.NotAfter) {
		notAfter = a.active.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("failed to issue signing certificate: the signing CA expired at %s", a.active.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-certutil.Backdate(a.cfg.LeafValidity)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.active.cert, key.Public(), a.active.key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create signing certificate: %w", err)
	}
	keyPEM, err = pemutil.EncodePrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to parse signing certificate: %w", err)
	}
	return pemutil.EncodeBundle([]*x509.Certificate{cert}), keyPEM, nil
}

// NeedsRenewal reports whether the signing certificate certPEM for subject must be reissued:
// unreadable, another subject, not issued by the active CA, or past two thirds of its lifetime.
func (a *Authority) NeedsRenewal(certPEM []byte, subject pkix.Name, now time.Time) bool {
	certs, err := pemutil.ParseCertificates(certPEM, pemutil.Limits{})
	if err != nil || len(certs) == 0 {
		return true
	}
	c := certs[0]
	if c.Subject.String() != subject.String() || c.CheckSignatureFrom(a.active.cert) != nil {
		return true
	}
	return !now.Before(renewAt(c))
}

// renewAt is two thirds into a certificate's lifetime.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// Tick advances the CA rotation at now and reports whether the state changed (persist it, then
// distribute the new TrustBundle):
//   - at two thirds of the active CA's lifetime a next CA is staged (trusted, not issuing);
//   - once trusted reports that every remote trusts the staged CA, it is promoted: it issues
//     from then on and the old active CA becomes previous (callers then reissue certificates,
//     see NeedsRenewal);
//   - the previous CA is dropped when it expires: nothing it issued is valid after that, and
//     callers reissue from the active CA as soon as it is promoted.
func (a *Authority) Tick(now time.Time, trusted func() bool) (bool, error) {
	changed := false
	if a.previous != nil && !now.Before(a.previous.NotAfter) {
		a.previous, changed = nil, true
	}
	if a.next == nil && !now.Before(renewAt(a.active.cert)) {
		next, err := newCA(a.cfg.Environment, now, a.cfg.CAValidity)
		if err != nil {
			return changed, err
		}
		a.next = next
		return true, nil
	}
	// Promote only once nothing issued by the previous CA needs its trust any more: a scheduled
	// rotation waits for the previous CA to expire; a rotation on request drops it (see
	// RotateNow).
	if a.next != nil && (a.previous == nil || a.request != "") && trusted != nil && trusted() {
		if a.request != "" {
			a.done = a.request
		}
		a.previous, a.active, a.next, a.request = a.active.cert, a.next, nil, ""
		changed = true
	}
	return changed, nil
}

// RotateNow stages a new CA at once for the rotation request id (agentctl rotate signing), unless
// the staged CA already answers it, and reports whether the state changed. Tick then promotes it
// as soon as every remote trusts it, even while a previous CA is still held: that previous CA is
// dropped then. Nothing it issued is in use by that time, since every signing certificate is
// reissued from the active CA as soon as that CA is promoted (NeedsRenewal), which was before
// the staged CA was even trusted. A CA staged by the schedule answers the request too.
func (a *Authority) RotateNow(id string, now time.Time) (bool, error) {
	if id == "" {
		return false, errors.New("failed to rotate the signing CA: empty request")
	}
	if id == a.done {
		return false, nil // answered: its CA was promoted
	}
	if a.next != nil {
		changed := a.request != id
		a.request = id
		return changed, nil
	}
	next, err := newCA(a.cfg.Environment, now, a.cfg.CAValidity)
	if err != nil {
		return false, err
	}
	a.next, a.request = next, id
	return true, nil
}

// Request is the rotation request the staged CA answers ("" when none is staged on request).
func (a *Authority) Request() string { return a.request }

// Done is the last rotation request whose CA was promoted ("" for none).
func (a *Authority) Done() string { return a.done }

// StagedCA is the staged next CA, nil when none is staged.
func (a *Authority) StagedCA() *x509.Certificate { return a.nextCert() }

// ActiveCA is the CA that issues signing certificates now.
func (a *Authority) ActiveCA() *x509.Certificate { return a.active.cert }

// newCA creates a self-signed ECDSA P-256 signing CA.
func newCA(env string, now time.Time, validity time.Duration) (*pair, error) {
	cert, key, err := certutil.NewCA("signing CA", "ecklink signing CA "+env+" "+now.UTC().Format("20060102T150405Z"), now, validity, 0)
	if err != nil {
		return nil, err
	}
	return &pair{cert: cert, key: key}, nil
}
