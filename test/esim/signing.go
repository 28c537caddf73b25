package esim

// Strong identity verification (ES 9.3+): the local cluster signs the cross-cluster headers
// of each request with cluster.remote.<alias>.signing.{certificate,key}; the remote checks the
// signature against cluster.remote.signing.certificate_authorities and, when the API key has a
// certificate_identity, the signer's subject DN against it. The order of the checks and their
// messages follow shared/reference/strong-identity-and-hot-reload.md (A5, A6). The signature
// header is esim's own encoding (JSON in base64), not ES's binary stream; only its content
// matters: transport version, the DER chain leaf first, the algorithm and the signature over the
// credentials and subject info headers joined by "\n".

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

const (
	// CrossClusterSubjectInfoHeader carries the authenticated subject of the local request.
	CrossClusterSubjectInfoHeader = "_cross_cluster_access_subject_info"
	// CrossClusterSignatureHeader carries the signature (9.3+).
	CrossClusterSignatureHeader = "_cross_cluster_access_signature"

	algECDSA = "SHA256withECDSA"
	algRSA   = "SHA256withRSA"
)

// CrossClusterHeaders are the transport headers of one request on the remote cluster port.
type CrossClusterHeaders struct {
	// Credentials is "ApiKey <encoded>" (_cross_cluster_access_credentials).
	Credentials string
	// SubjectInfo is _cross_cluster_access_subject_info.
	SubjectInfo string
	// Signature is _cross_cluster_access_signature, "" when the local cluster does not sign.
	Signature string
}

// SigningTrust is the remote's cluster.remote.signing.certificate_authorities, loaded by the
// caller (who owns the files).
type SigningTrust struct {
	// Configured reports that the setting is set. When it is not, ES uses the JDK's default
	// trust store, which holds no private CA; esim uses the system pool.
	Configured bool
	// CAs are the certificates of the configured files.
	CAs []*x509.Certificate
}

// signatureWire is esim's encoding of the signature header.
type signatureWire struct {
	TransportVersion string   `json:"transport_version"`
	Certificates     []string `json:"certificates"` // base64 DER, leaf first
	Algorithm        string   `json:"algorithm"`
	Signature        string   `json:"signature"` // base64
}

// Signer is the loaded signing material of one remote cluster alias.
type Signer struct {
	chain []*x509.Certificate
	key   crypto.Signer
	alg   string
}

// NewSigner loads a PEM certificate chain (leaf first) and a PEM private key, as ES loads
// cluster.remote.<alias>.signing.certificate and .key. RSA keys sign with SHA256withRSA, EC keys
// with SHA256withECDSA; other key types are refused with ES's "Unsupported Key Type [..]".
func NewSigner(certPEM, keyPEM []byte) (*Signer, error) {
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse signing certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("failed to parse signing certificate: no PEM certificate found")
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	s := &Signer{chain: chain, key: key}
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		s.alg = algECDSA
	case *rsa.PublicKey:
		s.alg = algRSA
	default:
		return nil, unsupportedKeyType(k)
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("failed to load signing config: the key does not match the certificate")
	}
	return s, nil
}

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("failed to parse signing key: no PEM block found")
	}
	var k any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to parse signing key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, unsupportedKeyType(k)
	}
	return s, nil
}

// Subject is the leaf's subject DN in RFC 2253 form, what a certificate_identity must match.
func (s *Signer) Subject() string { return s.chain[0].Subject.String() }

// Sign returns the value of the signature header for h (h.Signature is ignored).
func (s *Signer) Sign(h CrossClusterHeaders, transportVersion string, rnd io.Reader) (string, error) {
	digest := sha256.Sum256(signedPayload(h))
	var opts crypto.SignerOpts = crypto.SHA256
	sig, err := s.key.Sign(rnd, digest[:], opts)
	if err != nil {
		return "", fmt.Errorf("failed to sign cross cluster headers: %w", err)
	}
	w := signatureWire{TransportVersion: transportVersion, Algorithm: s.alg, Signature: base64.StdEncoding.EncodeToString(sig)}
	for _, c := range s.chain {
		w.Certificates = append(w.Certificates, base64.StdEncoding.EncodeToString(c.Raw))
	}
	data, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("failed to encode signature: %w", err)
	}
	return base64.StdEncoding.EncodeToString(data), nil
}

// signedPayload is what is signed: the credentials and subject info header values joined by
// "\n" (the order in the shipped 9.3 is not verified; esim only needs both covered).
func signedPayload(h CrossClusterHeaders) []byte {
	return []byte(h.Credentials + "\n" + h.SubjectInfo)
}

// describeChain renders a chain as ES names it in messages: [(<DN>;X.509;SHA1:<fp>),...].
func describeChain(chain []*x509.Certificate) string {
	parts := make([]string, len(chain))
	for i, c := range chain {
		fp := sha1.Sum(c.Raw)
		parts[i] = "(" + c.Subject.String() + ";X.509;SHA1:" + hex.EncodeToString(fp[:]) + ")"
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// decodeSignature parses the signature header; a failure is ES's "failed to extract credentials
// from headers".
func decodeSignature(v string) ([]*x509.Certificate, signatureWire, *Error) {
	var w signatureWire
	malformed := func(cause string) *Error {
		return iae("failed to extract credentials from headers").withCause(iae("%s", cause))
	}
	raw, msg := javaBase64Decode(v)
	if msg != "" {
		return nil, w, malformed(msg)
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, w, malformed("failed to read cross cluster access signature: " + err.Error())
	}
	var chain []*x509.Certificate
	for _, c := range w.Certificates {
		der, msg := javaBase64Decode(c)
		if msg != "" {
			return nil, w, malformed(msg)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, w, malformed("failed to parse certificate: " + err.Error())
		}
		chain = append(chain, cert)
	}
	return chain, w, nil
}

// verifySignature is the signature part of the remote's checks (A6 step 1).
func (n *Node) verifySignature(h CrossClusterHeaders, trust SigningTrust) ([]*x509.Certificate, *Error) {
	chain, w, perr := decodeSignature(h.Signature)
	if perr != nil {
		return nil, perr
	}
	if len(chain) == 0 {
		// [U] the exception type; ES reports it as an authentication failure.
		return nil, authErr("Provided signature does not contain any certificates")
	}
	if trust.Configured && len(trust.CAs) == 0 {
		n.log.Warn("Cross cluster API Key trust configuration [cluster.remote.signing] has no accepted certificate issuers")
		return nil, authErr("Cannot verify signed cross-cluster headers because [cluster.remote.signing] has not trust configuration")
	}
	var roots *x509.CertPool
	if trust.Configured {
		roots = x509.NewCertPool()
		for _, c := range trust.CAs {
			roots.AddCert(c)
		}
	} else if sys, err := x509.SystemCertPool(); err == nil {
		roots = sys
	} else {
		roots = x509.NewCertPool()
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// checkClientTrusted: the chain to a trusted issuer, the leaf within its validity dates, and
	// clientAuth when the leaf names extended key usages.
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: n.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		n.log.Debug("Failed to verify cross cluster api key signature certificate " + describeChain(chain))
		return nil, authErr("Failed to verify cross cluster api key signature certificate from %s", describeChain(chain))
	}
	sig, msg := javaBase64Decode(w.Signature)
	var alg x509.SignatureAlgorithm
	switch w.Algorithm {
	case algECDSA:
		alg = x509.ECDSAWithSHA256
	case algRSA:
		alg = x509.SHA256WithRSA
	}
	if msg != "" || alg == x509.UnknownSignatureAlgorithm || chain[0].CheckSignature(alg, signedPayload(h), sig) != nil {
		n.log.Debug("Invalid cross cluster api key signature received " + describeChain(chain))
		return nil, authErr("Invalid cross cluster api key signature from %s", describeChain(chain))
	}
	return chain, nil
}

// AuthenticateCrossClusterRequest authenticates the headers of a request on the remote cluster
// port as a 9.3+ remote does, in ES's code order:
//  1. a signature, when present, is verified even if the key asks for none: malformed ("failed
//     to extract credentials from headers"), no certificates, untrusted or expired signer
//     ("Failed to verify cross cluster api key signature certificate from [...]"), bad signature
//     ("Invalid cross cluster api key signature from [...]");
//  2. the API key (see AuthenticateCrossCluster);
//  3. a key with a certificate_identity needs a signature ("Expected signature for cross cluster
//     API key, but no signature was provided") whose leaf subject DN (RFC 2253) matches the
//     pattern as a whole.
//
// Below 9.3 the signature header is unknown and ignored. It returns the API key id or an *Error.
func (n *Node) AuthenticateCrossClusterRequest(h CrossClusterHeaders, trust SigningTrust) (string, error) {
	var chain []*x509.Certificate
	if h.Signature != "" && n.ver.hasSigningSettings() {
		var err *Error
		if chain, err = n.verifySignature(h, trust); err != nil {
			n.log.Warn("Authentication using apikey failed - " + err.Reason)
			return "", err
		}
	}
	id, err := n.AuthenticateCrossCluster(h.Credentials)
	if err != nil {
		return "", err
	}
	identity := n.certificateIdentity(id)
	if identity == nil || !n.ver.hasCertificateIdentity() {
		return id, nil
	}
	if chain == nil {
		const msg = "Expected signature for cross cluster API key, but no signature was provided"
		n.log.Warn("Authentication using apikey failed - " + msg)
		return "", authErr(msg)
	}
	dn := chain[0].Subject.String()
	// Compiled at create/update time; a full match, which anchored patterns satisfy either way.
	re, cerr := regexp.Compile(`^(?:` + *identity + `)$`)
	if cerr != nil || !re.MatchString(dn) {
		// [U] ES's exact text for a subject mismatch.
		e := authErr("DN from provided signature [%s] does not match API key certificate identity pattern [%s]", dn, *identity)
		n.log.Warn("Authentication using apikey failed - " + e.Reason)
		return "", e
	}
	return id, nil
}

// certificateIdentity is the key's certificate_identity, nil when it has none.
func (n *Node) certificateIdentity(id string) *string {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.keys[id]
	if k == nil || k.certIdentity == nil {
		return nil
	}
	s := *k.certIdentity
	return &s
}

// SupportsSigning reports whether the node's version has strong identity verification (9.3+).
func (n *Node) SupportsSigning() bool { return n.ver.hasSigningSettings() }

// unsupportedKeyType is ES's error for a key that is neither RSA nor EC.
// The name is Java's Key.getAlgorithm() where esim knows it.
func unsupportedKeyType(k any) error {
	name := fmt.Sprintf("%T", k)
	switch k.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		name = "EdDSA"
	}
	return errors.New("Unsupported Key Type [" + name + "]")
}
