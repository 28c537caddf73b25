// Package identitytest has fakes of identity's interfaces for the tests of its users.
package identitytest

import (
	"crypto/x509"
	"sync"
)

// Trust is an identity.TrustSource over a map of environment to CAs, safe for concurrent use.
// The zero value trusts no environment.
type Trust struct {
	mu  sync.Mutex
	cas map[string][]*x509.Certificate
}

// NewTrust returns a Trust of the CAs of each environment in cas.
func NewTrust(cas map[string][]*x509.Certificate) *Trust {
	t := &Trust{}
	for env, c := range cas {
		t.Set(env, c)
	}
	return t
}

// Set replaces the CAs trusted for env; nil unpairs it.
func (t *Trust) Set(env string, cas []*x509.Certificate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cas == nil {
		t.cas = map[string][]*x509.Certificate{}
	}
	t.cas[env] = cas
}

// PeerCAs returns the CAs trusted for env.
func (t *Trust) PeerCAs(env string) []*x509.Certificate {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cas[env]
}

// Environments lists the environments Set was called for, in no particular order.
func (t *Trust) Environments() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k := range t.cas {
		out = append(out, k)
	}
	return out
}
