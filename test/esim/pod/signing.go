package pod

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/ecklink/ecklink/test/esim"
)

// Strong identity verification (ES 9.3+) on the remote cluster port. The local pod signs the
// cross-cluster headers when cluster.remote.<alias>.signing.certificate and .key are set (in
// cluster settings or elasticsearch.yml), reading the files through its mounts at each connection
// as ES reloads changed files; the remote pod verifies with the files of
// cluster.remote.signing.certificate_authorities and the API key's certificate_identity
// (esim.Node.AuthenticateCrossClusterRequest).

const (
	keySigningCAs = "cluster.remote.signing.certificate_authorities"
)

// subjectInfo is the _cross_cluster_access_subject_info of the handshake: esim's stand-in for
// ES's serialized subject (the internal system user of the local cluster).
func subjectInfo(cluster string) string {
	return base64.StdEncoding.EncodeToString([]byte(`{"user":"_system","cluster":"` + cluster + `"}`))
}

// signingPaths returns the alias's signing certificate and key paths: cluster settings over
// elasticsearch.yml, as ES resolves a dynamic node setting.
func signingPaths(rc esim.RemoteClusterSettings, cfg Settings) (cert, key string) {
	cert, key = rc.SigningCertificate, rc.SigningKey
	if cert == "" {
		cert = cfg.String("cluster.remote." + rc.Alias + ".signing.certificate")
	}
	if key == "" {
		key = cfg.String("cluster.remote." + rc.Alias + ".signing.key")
	}
	return cert, key
}

// signRequest adds the signature header to req when the alias has signing material (9.3+). A
// configuration that does not load is logged as ES logs it, and the request goes unsigned.
func (p *Pod) signRequest(rc esim.RemoteClusterSettings, spec podSpec, now time.Time, req *wireRequest) {
	if !atLeast(spec.Version, 9, 3) {
		return
	}
	certPath, keyPath := signingPaths(rc, spec.Config)
	if certPath == "" && keyPath == "" {
		return
	}
	signer, err := p.loadSigner(spec, certPath, keyPath, now)
	if err != nil {
		p.log.Error("Failed to load signing config for cluster ["+rc.Alias+"]", "error", err)
		return
	}
	h := esim.CrossClusterHeaders{Credentials: req.Headers[CredentialsHeader], SubjectInfo: req.Headers[esim.CrossClusterSubjectInfoHeader]}
	sig, err := signer.Sign(h, spec.Version, rand.Reader)
	if err != nil {
		p.log.Error("Failed to load signing config for cluster ["+rc.Alias+"]", "error", err)
		return
	}
	req.Headers[esim.CrossClusterSignatureHeader] = sig
}

func (p *Pod) loadSigner(spec podSpec, certPath, keyPath string, now time.Time) (*esim.Signer, error) {
	if certPath == "" || keyPath == "" {
		return nil, fmt.Errorf("signing.certificate and signing.key must be set together")
	}
	fs := files{view: p.view, mounts: spec.Mounts, now: now}
	certPEM, err := fs.read(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := fs.read(keyPath)
	if err != nil {
		return nil, err
	}
	return esim.NewSigner(certPEM, keyPEM)
}

// signingTrust loads cluster.remote.signing.certificate_authorities (cluster settings over
// elasticsearch.yml) through the pod's mounts. A file that cannot be read contributes no
// issuer, so a configured trust without issuers refuses every signature, as ES does.
func (p *Pod) signingTrust(spec podSpec, now time.Time) esim.SigningTrust {
	paths := p.node.SigningCertificateAuthorities()
	if len(paths) == 0 {
		paths = spec.Config.List(keySigningCAs)
	}
	if len(paths) == 0 {
		return esim.SigningTrust{}
	}
	trust := esim.SigningTrust{Configured: true}
	fs := files{view: p.view, mounts: spec.Mounts, now: now}
	for _, path := range paths {
		data, err := fs.read(path)
		if err != nil {
			p.log.Warn("failed to read signing certificate authorities", "path", path, "error", err)
			continue
		}
		certs, err := parseBundle(data)
		if err != nil {
			p.log.Warn("failed to parse signing certificate authorities", "path", path, "error", err)
			continue
		}
		trust.CAs = append(trust.CAs, certs...)
	}
	return trust
}

// fileExists is the node's check of the files a signing setting names: resolved against the
// config directory and visible through the running pod's mounts now.
func (p *Pod) fileExists(path string) (string, bool) {
	p.mu.Lock()
	spec := p.running
	p.mu.Unlock()
	fs := files{view: p.view, mounts: spec.Mounts, now: time.Now()}
	_, err := fs.read(path)
	return resolvePath(path), err == nil
}
